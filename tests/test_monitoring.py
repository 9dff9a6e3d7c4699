"""Monitoring that sees every failure (issue 13): health-check pings for every outcome with
a run id and a User-Agent, a warning for a ping the monitor refuses, one metrics file that
keeps every command's series, JSON-only stderr, and a lock file that names its holder."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import stat
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpx import HTTPXMock

from gscsync import __version__, commands, logs, runlog
from gscsync.api.breaker import Breaker
from gscsync.config import Settings, load_settings
from gscsync.errors import Interrupted, StorageError
from gscsync.lock import hold_lock, parse_holder, read_holder
from gscsync.metrics import METRICS_MODE, PER_COMMAND, write_metrics
from gscsync.models import BreakerState, RunReport
from gscsync.store import memory_store, open_store
from tests.conftest import lock_held_elsewhere, run_cli
from tests.fakes import FakeGsc

S1 = "sc-domain:example.com"
HC = "https://hc.test/check-1"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass
class HealthCheck:
    """A healthchecks.io stand-in: records each ping, answers ``status``."""

    status: int = 200
    requests: list[httpx.Request] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def rid(self, i: int) -> str | None:
        return self.requests[i].url.params.get("rid")


@pytest.fixture
def hc(
    httpx_mock: HTTPXMock, fake: FakeGsc, api_env: Path, monkeypatch: pytest.MonkeyPatch
) -> HealthCheck:
    """The fake API with one final day of sc-domain:example.com (web), and a health check."""
    check = HealthCheck()

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "hc.test":
            check.requests.append(request)
            return httpx.Response(check.status, text="OK" if check.status == 200 else "not found")
        return fake(request)

    httpx_mock.add_callback(route, is_reusable=True)
    fake.add_day(S1, "web", fake.final_through, 3)
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    monkeypatch.setenv("GSCSYNC_HEALTHCHECK_URL", HC)
    return check


# -- pings: what each outcome sends ---------------------------------------------------------


def test_a_successful_run_pings_start_then_success_with_a_user_agent_and_its_run_id(
    hc: HealthCheck,
) -> None:
    assert run_cli("sync") == 0
    assert hc.paths == ["/check-1/start", "/check-1"]
    for request in hc.requests:
        assert request.headers["User-Agent"] == f"gscsync/{__version__}"
        assert request.extensions["timeout"]["read"] == runlog.PING_TIMEOUT  # short, as before
    end = hc.rid(1)
    assert end is not None and UUID.fullmatch(end)
    assert hc.requests[1].content.decode().startswith("gscsync sync ok: ")  # the summary


def test_a_ping_the_monitor_answers_404_warns_once_and_the_run_goes_on(
    hc: HealthCheck, capsys: pytest.CaptureFixture[str]
) -> None:
    hc.status = 404  # a mistyped check URL: before, this counted as success, silently
    assert run_cli("sync") == 0
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "healthcheck ping" in ln]
    assert len(warned) == 2  # one line for each ping: start and success
    assert "healthcheck ping start failed: the monitor answered 404 Not Found" in warned[0]
    assert "healthcheck ping success failed: the monitor answered 404" in warned[1]


def test_a_partial_run_pings_exit_1(hc: HealthCheck, fake: FakeGsc) -> None:
    fake.errors = [(400, "badRequest", "Invalid value")] * 3
    assert run_cli("sync") == 1
    assert hc.paths[-1] == "/check-1/1"


def test_no_accessible_site_pings_exit_3(hc: HealthCheck, fake: FakeGsc) -> None:
    fake.forbidden.add(S1)
    assert run_cli("sync") == 3
    assert hc.paths == ["/check-1/start", "/check-1/3"]


def test_an_open_breaker_pings_exit_4(hc: HealthCheck, api_env: Path) -> None:
    with open_store(api_env) as store:  # opened a minute ago after an outage
        store.save_breaker(BreakerState("open", 5, time.time() - 60, 1800, "500 backendError"))
    assert run_cli("sync") == 4  # before, a skipped run pinged nothing
    assert hc.paths == ["/check-1/4"]
    assert "circuit breaker open" in hc.requests[0].content.decode()


def test_an_interrupted_run_pings_exit_130(hc: HealthCheck) -> None:
    stop = threading.Event()
    stop.set()  # SIGTERM before the run got going
    with pytest.raises(Interrupted) as info:
        commands.run_sync(load_settings(), stop=stop)
    assert hc.paths == ["/check-1/start", "/check-1/130"]
    assert runlog.reported(info.value)  # the CLI will not ping it a second time


def test_the_start_and_the_end_of_one_run_carry_the_same_run_id(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_response(url=re.compile(r"https://hc\.test/.*"), is_reusable=True)
    settings = Settings(healthcheck_url=HC)
    runs = []
    for _ in range(2):
        run = runlog.RunLog("sync", settings, memory_store(), time.monotonic())
        run.ping_start()
        run.finish(RunReport(), Breaker(BreakerState(), threshold=5, cooldown=60))
        runs.append(run.rid)
    pings = httpx_mock.get_requests()
    assert [p.url.path for p in pings] == ["/check-1/start", "/check-1"] * 2
    rids = [p.url.params["rid"] for p in pings]
    assert rids == [runs[0], runs[0], runs[1], runs[1]] and runs[0] != runs[1]


def test_closing_a_run_from_its_error_marks_the_error_as_pinged(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_response(url=re.compile(r"https://hc\.test/.*"))
    run = runlog.RunLog("sync", Settings(healthcheck_url=HC), memory_store(), time.monotonic())
    breaker = Breaker(BreakerState(), threshold=5, cooldown=60)
    try:
        raise StorageError("disk full at gsc.db")
    except StorageError as exc:
        run.close(RunReport(), "failed", exc.exit_code, breaker, error=str(exc))
        assert runlog.reported(exc)
    assert not runlog.reported(StorageError("another one"))
    [request] = httpx_mock.get_requests()
    assert request.url.path == "/check-1/1" and request.url.params["rid"] == run.rid


@pytest.mark.parametrize(("code", "kind"), [(2, "2"), (3, "3"), (75, "log")])
def test_a_failure_before_the_run_pings_its_exit_code_with_the_url_from_the_environment(
    httpx_mock: HTTPXMock, code: int, kind: str
) -> None:
    httpx_mock.add_response(url=re.compile(r"https://hc\.test/check-1/\w+\?rid=.*"))
    environ = {"GSCSYNC_HEALTHCHECK_URL": HC + "/"}
    runlog.notify_failure(environ, None, code, "gscsync: error: GSCSYNC_QPM='x' is not a number")
    [request] = httpx_mock.get_requests()
    assert request.url.path == f"/check-1/{kind}"
    assert UUID.fullmatch(request.url.params["rid"])
    assert request.headers["User-Agent"] == f"gscsync/{__version__}"
    assert request.content == b"gscsync: error: GSCSYNC_QPM='x' is not a number"


def test_a_failure_before_the_run_finds_the_url_in_a_dotenv_it_cannot_fully_parse(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    httpx_mock.add_response(url=re.compile(r"https://hc\.test/check-1/2\?rid=.*"))
    env = tmp_path / "gscsync.env"
    env.write_text(f"GSCSYNC_SITES='unterminated\nGSCSYNC_HEALTHCHECK_URL={HC}\n")
    runlog.notify_failure({}, env, 2, "gscsync: error: gscsync.env line 1 cannot be parsed")
    assert [r.url.path for r in httpx_mock.get_requests()] == ["/check-1/2"]


@pytest.mark.parametrize(
    "environ",
    [{}, {"GSCSYNC_HEALTHCHECK_URL": ""}, {"GSCSYNC_HEALTHCHECK_URL": "hc-ping.com/abc"}],
    ids=["unset", "empty", "not-a-url"],
)
def test_a_failure_before_the_run_pings_nothing_without_a_usable_url(
    httpx_mock: HTTPXMock, environ: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "gscsync.env").mkdir()  # an env file that cannot be read is no URL either
    runlog.notify_failure(environ, tmp_path / "gscsync.env", 2, "gscsync: error: ...")
    assert httpx_mock.get_requests() == []


def test_a_disabled_run_pings_success_saying_it_is_disabled(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=re.compile(r"https://hc\.test/check-1\?rid=.*"))
    runlog.ping_disabled(HC, "sync")
    [request] = httpx_mock.get_requests()
    assert request.url.path == "/check-1"  # a success: the check stays up through the pause
    assert b"disabled (GSCSYNC_ENABLED is off)" in request.content


def test_ping_urls_keep_the_query_of_a_slug_url() -> None:
    url = "https://hc-ping.com/ping-key/gscsync-sync?create=1"
    rid = "0b7f5c56-6b1e-4c55-9d3e-8f0e1c3a9b21"
    assert str(runlog.ping_url(url, "start", rid)) == (
        f"https://hc-ping.com/ping-key/gscsync-sync/start?create=1&rid={rid}"
    )
    assert str(runlog.ping_url(url, "success")) == url
    assert str(runlog.ping_url(HC, runlog.end_kind(4))) == HC + "/4"
    assert str(runlog.ping_url(HC, runlog.end_kind(75))) == HC + "/log"  # not a failure


def test_a_ping_that_raises_anything_only_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the HTTP stack")

    monkeypatch.setattr(httpx, "post", broken)
    with caplog.at_level(logging.WARNING, logger="gscsync"):
        runlog.ping(HC, "start")
    assert [r.getMessage() for r in caplog.records] == [
        "healthcheck ping start failed: RuntimeError"
    ]


# -- metrics: every command's series, HELP and TYPE, a private file ------------------------


def families(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def write(path: Path, command: str, code: int, now: float, **extra: object) -> None:
    args: dict[str, object] = {
        "command": command,
        "status": "ok" if code == 0 else "failed",
        "exit_code": code,
        "duration": 1.5,
        "counts": {"days_ok": 2, "days_failed": 0, "rows_written": 30, "requests": 4},
        "breaker_open": False,
        "newest_final": {(S1, "web"): "2026-03-01"},
        "now": now,
        **extra,
    }
    write_metrics(path, **args)  # type: ignore[arg-type]


def test_a_backfill_keeps_the_sync_series_and_a_failed_run_keeps_the_last_success(
    tmp_path: Path,
) -> None:
    prom = tmp_path / "gscsync.prom"
    write(prom, "sync", 0, now=1000.0)
    write(prom, "backfill", 0, now=2000.0, breaker_open=True)
    write(prom, "sync", 1, now=3000.0)
    got = families(prom)
    sync, backfill = (("command", "sync"),), (("command", "backfill"),)
    assert got["gscsync_last_run_timestamp_seconds"] == {sync: 3000.0, backfill: 2000.0}
    assert got["gscsync_last_success_timestamp_seconds"] == {sync: 1000.0, backfill: 2000.0}
    assert got["gscsync_last_run_exit_code"] == {
        (("command", "sync"), ("status", "failed")): 1.0,
        (("command", "backfill"), ("status", "ok")): 0.0,
    }
    assert got["gscsync_last_run_rows_written"] == {sync: 30.0, backfill: 30.0}
    assert got["gscsync_breaker_open"] == {(): 0.0}  # the current state: this run's view
    midnight = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    newest = (("search_type", "web"), ("site", S1))
    assert got["gscsync_newest_final_day_timestamp_seconds"] == {newest: midnight}


@pytest.mark.parametrize("mode", [METRICS_MODE, 0o640])
def test_every_family_has_help_and_type_and_the_file_has_its_mode_whatever_the_umask(
    tmp_path: Path, mode: int
) -> None:
    (tmp_path / "textfile").mkdir()
    prom = tmp_path / "textfile" / "gscsync.prom"
    old = os.umask(0)  # write_to_textfile alone would leave it 0666 here, 0644 usually
    try:
        write(prom, "sync", 0, now=1000.0, mode=mode)
    finally:
        os.umask(old)
    assert stat.S_IMODE(prom.stat().st_mode) == mode
    assert METRICS_MODE == 0o600  # GSCSYNC_FILE_MODE's default
    assert os.listdir(prom.parent) == ["gscsync.prom"]  # no staging left behind
    text = prom.read_text()
    names = {ln.split("{")[0].split(" ")[0] for ln in text.splitlines() if not ln.startswith("#")}
    assert set(PER_COMMAND) <= names
    for name in names:
        assert re.search(rf"^# HELP {name} \S", text, re.M), name
        assert re.search(rf"^# TYPE {name} gauge$", text, re.M), name


def test_a_metrics_file_that_cannot_be_read_back_is_rewritten_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prom = tmp_path / "gscsync.prom"
    prom.write_text('gscsync_last_run_exit_code{command="backfill" 0\n')  # broken by hand
    with caplog.at_level(logging.WARNING, logger="gscsync"):
        write(prom, "sync", 0, now=1000.0)
    assert "could not be read back" in caplog.text
    assert families(prom)["gscsync_last_run_timestamp_seconds"] == {(("command", "sync"),): 1000.0}


def test_sync_then_backfill_through_the_cli_leaves_both_in_the_metrics_file(
    hc: HealthCheck, fake: FakeGsc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom = tmp_path / "gscsync.prom"
    monkeypatch.setenv("GSCSYNC_METRICS_FILE", str(prom))
    assert run_cli("sync") == 0
    last = date.fromisoformat(fake.final_through)
    start = (last - timedelta(days=2)).isoformat()
    assert run_cli("backfill", "--start", start, "--end", last.isoformat()) == 0
    got = families(prom)
    for name in ("gscsync_last_run_timestamp_seconds", "gscsync_last_success_timestamp_seconds"):
        assert {dict(k)["command"] for k in got[name]} == {"sync", "backfill"}, name
    assert stat.S_IMODE(prom.stat().st_mode) == 0o600  # GSCSYNC_FILE_MODE's default


# -- stderr under --log-format json --------------------------------------------------------


def test_a_library_warning_is_a_json_line_under_json(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    logging.captureWarnings(False)  # pytest restores warnings.showwarning after each test
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            logs.configure("json", stream=stream)
            warnings.warn("end user credentials without a quota project", stacklevel=1)
    finally:
        logging.captureWarnings(False)
        logs.configure("text")
    [line] = stream.getvalue().splitlines()
    doc = json.loads(line)
    assert doc["level"] == "warning" and "without a quota project" in doc["msg"]


def test_the_early_log_format_comes_from_the_flag_the_environment_or_the_env_file(
    tmp_path: Path,
) -> None:
    env = tmp_path / ".env"
    assert logs.early_format(None, {}, None) == "text"
    assert logs.early_format(None, {"GSCSYNC_LOG_FORMAT": " JSON "}, None) == "json"
    assert logs.early_format("text", {"GSCSYNC_LOG_FORMAT": "json"}, None) == "text"
    env.write_text("GSCSYNC_LOG_FORMAT=json\nGSCSYNC_QPM='unterminated\n")  # ./.env, broken
    assert logs.early_format(None, {}, None) == "json"
    assert logs.early_format("xml", {}, None) == "text"  # the settings refuse it (exit 2)
    assert logs.argv_option(["sync", "--log-format=json"], "--log-format") == "json"
    assert logs.argv_option(["sync", "--log-format", "json"], "--log-format") == "json"
    assert logs.argv_option(["sync", "--", "--log-format", "json"], "--log-format") is None


# -- the lock file names its holder ---------------------------------------------------------


def test_the_lock_file_records_the_holders_pid_and_start_time(tmp_path: Path) -> None:
    lock = tmp_path / "gsc.db.lock"
    with hold_lock(lock):
        holder = read_holder(lock)
        assert holder is not None and holder.pid == os.getpid() and holder.started
        started = datetime.fromisoformat(holder.started.replace("Z", "+00:00"))
        assert abs(started - datetime.now(UTC)) < timedelta(seconds=5)
    assert lock.read_text() == ""  # emptied when the run ends, as before


def test_a_lock_file_an_older_version_left_is_still_its_own(tmp_path: Path) -> None:
    lock = tmp_path / "gsc.db.lock"
    lock.write_text("4242\n")  # a pid alone, from a run killed before this version
    with hold_lock(lock):
        holder = read_holder(lock)
        assert holder is not None and holder.pid == os.getpid() and holder.started
    assert parse_holder(b"4242\n") == (4242, None)
    assert parse_holder(b"4242 2026-03-06T04:00:00Z\n") == (4242, "2026-03-06T04:00:00Z")
    for foreign in (b"SQLite format 3\x00", b"4242 yesterday", b"-1\n"):
        assert parse_holder(foreign) is None


@pytest.fixture
def held(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    with lock_held_elsewhere(tmp_path / "gsc.db.lock") as proc:
        yield proc


def test_a_second_process_reads_who_holds_the_lock(
    held: subprocess.Popen[str], tmp_path: Path
) -> None:
    holder = read_holder(tmp_path / "gsc.db.lock")
    assert holder is not None and holder.pid == held.pid and holder.started is not None


# -- through the CLI: the errors before a run, the run id, disabled runs, JSON stderr -------


def test_the_start_and_the_end_ping_of_a_cli_run_carry_one_run_id(hc: HealthCheck) -> None:
    assert run_cli("sync") == 0
    assert hc.paths == ["/check-1/start", "/check-1"]
    assert hc.rid(0) is not None and UUID.fullmatch(hc.rid(0) or "")
    assert hc.rid(0) == hc.rid(1)


def test_bad_settings_ping_exit_2_with_the_url_from_the_environment(
    hc: HealthCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GSCSYNC_QPM", "lots")
    assert run_cli("sync") == 2  # before, exit 2 sent nothing
    assert hc.paths == ["/check-1/2"]
    assert "GSCSYNC_QPM" in hc.requests[0].content.decode()
    assert hc.requests[0].headers["User-Agent"] == f"gscsync/{__version__}"


def test_an_env_file_that_cannot_be_parsed_still_gives_its_url_for_the_exit_2_ping(
    hc: HealthCheck, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GSCSYNC_HEALTHCHECK_URL")
    env = tmp_path / "gscsync.env"
    env.write_text(f"GSCSYNC_HEALTHCHECK_URL={HC}\nGSCSYNC_SITES='unterminated\n")
    assert run_cli("backfill", "--env-file", str(env)) == 2
    assert hc.paths == ["/check-1/2"]


def test_a_usage_error_pings_exit_2_and_a_dry_run_or_status_pings_nothing(
    hc: HealthCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli("sync", "--no-such-flag") == 2
    assert hc.paths == ["/check-1/2"]
    monkeypatch.setenv("GSCSYNC_QPM", "lots")
    assert run_cli("sync", "--dry-run") == 2  # a person at a terminal, not the cron job
    assert run_cli("status") == 2
    assert hc.paths == ["/check-1/2"]


def test_a_held_lock_is_logged_at_the_check_not_failed_and_says_to_wait(
    hc: HealthCheck, held: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("sync") == 75
    assert hc.paths == ["/check-1/log"]  # visible in the check's log; the check stays up
    err = capsys.readouterr().err
    assert f"another gscsync run (pid {held.pid}) holds the lock" in err
    assert "wait for it to finish" in err and f"ps -o pid,lstart,args -p {held.pid}" in err
    assert "set GSCSYNC_LOCK_FILE" not in err  # which would let a second writer in


def test_a_runs_row_the_database_refuses_is_pinged_once_by_the_cli(
    hc: HealthCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gscsync.store import SqliteStore

    def refuse(self: SqliteStore, command: str) -> int:
        raise StorageError("database is locked by another writer (gsc.db)")

    monkeypatch.setattr(SqliteStore, "start_run", refuse)
    assert run_cli("sync") == 1
    assert hc.paths == ["/check-1/1"]


def test_a_disabled_run_pings_success_through_the_cli(
    hc: HealthCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GSCSYNC_ENABLED", "false")
    assert run_cli("sync") == 0
    assert hc.paths == ["/check-1"]
    assert "disabled" in hc.requests[0].content.decode()


def json_lines(err: str) -> list[dict[str, object]]:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines
    return [json.loads(ln) for ln in lines]  # every line is JSON, or this raises


def test_stderr_is_only_json_when_the_environment_asks_for_it_and_the_settings_fail(
    hc: HealthCheck, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GSCSYNC_LOG_FORMAT", "json")  # no flag: before, this line was text
    monkeypatch.setenv("GSCSYNC_QPM", "lots")
    assert run_cli("sync") == 2
    [doc] = json_lines(capsys.readouterr().err)
    assert doc["level"] == "error" and "GSCSYNC_QPM" in str(doc["msg"])


def test_a_usage_error_is_a_json_line_under_log_format_json(
    hc: HealthCheck, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("sync", "--log-format", "json", "--no-such-flag") == 2
    [doc] = json_lines(capsys.readouterr().err)
    assert "No such option" in str(doc["msg"])


def test_a_whole_run_with_a_refused_ping_writes_only_json_to_stderr(
    hc: HealthCheck, capsys: pytest.CaptureFixture[str]
) -> None:
    hc.status = 404
    assert run_cli("sync", "--log-format", "json") == 0
    docs = json_lines(capsys.readouterr().err)
    assert sum("answered 404" in str(d["msg"]) for d in docs) == 2


def test_a_disabled_run_says_so_in_the_metrics_and_keeps_the_last_real_state(
    hc: HealthCheck, fake: FakeGsc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom = tmp_path / "gscsync.prom"
    monkeypatch.setenv("GSCSYNC_METRICS_FILE", str(prom))
    assert run_cli("sync") == 0
    before = families(prom)
    monkeypatch.setenv("GSCSYNC_ENABLED", "false")
    assert run_cli("sync") == 0
    after = families(prom)
    assert after["gscsync_enabled"] == {(): 0.0}
    assert after["gscsync_last_run_exit_code"] == {
        (("command", "sync"), ("status", "skipped")): 0.0
    }
    # nothing was synced: the last success stays the real run's, the state stays its view
    for name in (
        "gscsync_last_success_timestamp_seconds",
        "gscsync_newest_final_day_timestamp_seconds",
    ):
        assert after[name] == before[name], name
    assert before["gscsync_enabled"] == {(): 1.0}
