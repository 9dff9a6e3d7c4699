"""The layout holds: storage behind one seam, the core free of the CLI, the emulator
reached only by the demo, and every command documented with an example."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import gscsync
from gscsync.cli import app

PACKAGE = Path(gscsync.__file__).parent
CLI_LAYER = {"cli.py", "cli_options.py", "render.py", "render_status.py"}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def modules() -> dict[str, set[str]]:
    return {
        str(p.relative_to(PACKAGE)): imports(p)
        for p in sorted(PACKAGE.rglob("*.py"))
        if "emulator" not in p.relative_to(PACKAGE).parts
    }


def offenders(allowed: set[str], *banned: str) -> list[str]:
    return [
        f"{name} imports {mod}"
        for name, mods in modules().items()
        if name not in allowed
        for mod in mods
        if any(mod == b or mod.startswith(b + ".") for b in banned)
    ]


def test_only_the_store_touches_sqlite() -> None:
    allowed = {name for name in modules() if name.startswith("store/")}
    assert offenders(allowed, "sqlite3", "sqlite_utils") == []


def test_the_core_never_imports_the_cli_libraries() -> None:
    assert offenders(CLI_LAYER, "typer", "rich", "click") == []


def test_only_the_demo_imports_the_emulator() -> None:
    assert offenders({"demo.py"}, "gscsync.emulator") == []


def test_the_checks_above_would_catch_an_offender(tmp_path: Path) -> None:
    sneaky = tmp_path / "x.py"
    sneaky.write_text("def f():\n    import sqlite3\n    from rich.table import Table\n")
    assert imports(sneaky) == {"sqlite3", "rich.table"}


def test_a_cron_run_does_not_load_the_emulator() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gscsync.cli, gscsync.commands; "
        "print(any(m.startswith('gscsync.emulator') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


COMMANDS = sorted(c.name or "" for c in app.registered_commands)


def test_every_command_is_registered() -> None:
    expected = [
        "sync",
        "backfill",
        "status",
        "sites",
        "check",
        "demo",
        "datasette-metadata",
        "merge",
    ]
    assert COMMANDS == sorted(expected)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Example: gscsync {name}" in " ".join(result.output.split())


@pytest.mark.parametrize("name", ["sync", "backfill"])
def test_fetching_commands_take_every_shared_option(name: str) -> None:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    flags = {opt for p in command.params for opt in p.opts}
    assert {"--site", "--search-type", "--db", "--env-file", "--log-format", "-v", "-q"} <= flags
    assert "--dry-run" in flags
