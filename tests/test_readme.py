"""The README is the user's whole manual: its settings table names every setting the
code reads, with the code's own defaults, and points nowhere outside the project."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from gscsync import config

README = Path(__file__).resolve().parent.parent / "README.md"
# defaults the code spells as None or empty, said in words in the README
IN_WORDS = {
    "credentials": 'see "Credentials" below',
    "sites": "every property the credentials can read",
    "lock_file": "`<db>.lock`",
    "file_mode": "`0600`",
}


def settings_table() -> dict[str, str]:
    text = README.read_text()
    block = text.split("<!-- settings:start", 1)[1].split("<!-- settings:end", 1)[0]
    rows = re.findall(r"^\| `(GSCSYNC_[A-Z_]+)` \| (.+?) \| .+ \|$", block, re.M)
    return {name: default.strip() for name, default in rows}


def shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, tuple):
        items = [":".join(v) if isinstance(v, tuple) else str(v) for v in value]
        return f"`{','.join(items)}`"
    return f"`{value}`"


def test_the_settings_table_lists_every_setting_with_the_codes_default() -> None:
    table = settings_table()
    defaults = {f.name: f.default for f in dataclasses.fields(config.Settings)}
    names = {spec.env[0]: spec.attr for spec in config._SPECS}
    assert set(table) == set(names)  # no setting missing, none invented
    for name, attr in names.items():
        expected = IN_WORDS.get(attr) or shown(defaults[attr])
        assert table[name] == expected, name


def test_the_readme_points_nowhere_outside_the_project() -> None:
    text = README.read_text()
    assert "../shared" not in text and "SPEC.md" not in text
