"""The scheduling examples in ``examples/`` parse, name only what exists, and keep their word.

Every cron line has a valid schedule (and, in /etc/cron.d, a user), every ``%`` is escaped,
every gscsync command parses with the real CLI, every variable named is a gscsync setting
or a known outside one, the systemd units carry what the README promises (and pass
``systemd-analyze verify`` where it works), the Kubernetes manifests hold together, and the
timing arithmetic of every flavour (sync start, runtime limit, health-check hour,
``--max-age``) still catches one missed run without a false alarm. The cron command lines
are also run with ``sh`` against a fake gscsync, to prove what they do with each exit code.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from gscsync.cli import app
from gscsync.config import ENV_VARS, load_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
USER_CRONTAB = EXAMPLES / "crontab"
CRON_D = EXAMPLES / "cron.d" / "gscsync"
SYSTEMD = EXAMPLES / "systemd"
UNITS = ("gscsync.service", "gscsync.timer", "gscsync-status.service", "gscsync-status.timer")
K8S = EXAMPLES / "kubernetes" / "cronjob.yaml"
ENV_FILE = EXAMPLES / "gscsync.env"
LOGROTATE = EXAMPLES / "logrotate" / "gscsync"
HOUR = 3600

# Sharding (GSCSYNC_SHARDS, GSCSYNC_SHARD) was added beside these examples: named here too,
# so this test does not depend on the order in which the two changes land.
GSCSYNC_NAMES = set(ENV_VARS) | {"GSCSYNC_SHARDS", "GSCSYNC_SHARD"}
# Variables the examples may name that are not gscsync's: cron's own settings, the shell's
# HOME and PATH, and the index the Kubernetes Job controller gives each pod.
EXTERNAL_NAMES = {"HOME", "PATH", "SHELL", "MAILTO", "JOB_COMPLETION_INDEX"}


# --- cron ------------------------------------------------------------------------------

FIELDS = (  # name, lowest, highest, names allowed (as single values)
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)},
    ),
    ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)
SPECIALS = {"@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight"}
SPECIALS |= {"@hourly"}


def schedule_errors(fields: list[str]) -> list[str]:
    """What is wrong with five cron schedule fields (an empty list when they are valid).

    Each field is ``*`` or a comma list of ``N`` or ``N-M``, ``*`` and ranges may take
    ``/STEP``; month and weekday also take a name (``jan``, ``mon``) on its own, as the
    crontab(5) of Debian's cron allows (no ranges or lists of names)."""
    if len(fields) != 5:
        return [f"{len(fields)} schedule fields, not 5"]
    errors = []
    for text, (name, low, high, names) in zip(fields, FIELDS, strict=True):
        if text.lower() in names:
            continue
        for item in text.split(","):
            m = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", item)
            if m is None:
                errors.append(f"{name}: {item!r} is not *, N, N-M or a step of them")
                continue
            start = int(m[2]) if m[2] else low
            end = int(m[3]) if m[3] else (high if m[1] == "*" else start)
            if m[4] is not None and m[1] != "*" and m[3] is None:
                errors.append(f"{name}: {item!r}: a step needs * or a range (N-M/S)")
            if not low <= start <= high or not low <= end <= high:
                errors.append(f"{name}: {item!r} outside {low}-{high}")
            elif start > end:
                errors.append(f"{name}: {item!r} runs backwards")
            if m[4] is not None and not 1 <= int(m[4]) <= high - low + 1:
                errors.append(f"{name}: step {m[4]} outside 1-{high - low + 1}")
    return errors


@dataclass
class CronJob:
    lineno: int
    schedule: list[str]
    user: str | None
    raw: str  # the command as written (before cron's % processing)

    @property
    def command(self) -> str:
        """The command cron hands to the shell: ``\\%`` becomes ``%``; a bare ``%`` would
        end it (the rest becoming standard input), which no example wants."""
        return self.raw.replace("\\%", "%")


def cron_file(path: Path, *, user_field: bool) -> tuple[dict[str, str], list[CronJob]]:
    """The environment lines and the job lines of a crontab."""
    env: dict[str, str] = {}
    jobs = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if m := re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", text):
            env[m[1]] = m[2]
            continue
        if text.startswith("@"):
            special, rest = text.split(None, 1)
            assert special in SPECIALS, f"{path.name}:{lineno}: unknown {special}"
            schedule, words = [special], rest
        else:
            parts = text.split(None, 5)
            assert len(parts) == 6, f"{path.name}:{lineno}: not a job line: {text}"
            schedule, words = parts[:5], parts[5]
            errors = schedule_errors(schedule)
            assert not errors, f"{path.name}:{lineno}: {'; '.join(errors)}"
        user = None
        if user_field:
            user, words = words.split(None, 1)
        jobs.append(CronJob(lineno, schedule, user, words))
    return env, jobs


def cron_jobs() -> Iterator[tuple[Path, CronJob]]:
    for path, user_field in ((USER_CRONTAB, False), (CRON_D, True)):
        for job in cron_file(path, user_field=user_field)[1]:
            yield path, job


@pytest.mark.parametrize(
    "schedule",
    ["0 * * * *", "0 4 * * *", "*/15 0-6,22-23 1-31/2 jan *", "0 8 * * mon", "59 23 31 12 7"],
)
def test_the_schedule_checker_takes_valid_schedules(schedule: str) -> None:
    assert schedule_errors(schedule.split()) == []


@pytest.mark.parametrize(
    "schedule",
    ["60 * * * *", "0 24 * * *", "0 4 0 * *", "0 4 * 13 *", "0 4 * * 8", "0 6-4 * * *",
     "*/0 * * * *", "5/10 * * * *", "0 4 * jan-mar *", "0 4 * *", "0 4 * * * *", "a * * * *"],
)  # fmt: skip
def test_the_schedule_checker_refuses_invalid_schedules(schedule: str) -> None:
    assert schedule_errors(schedule.split())


def test_cron_files_have_valid_lines_users_and_escaped_percent_signs() -> None:
    env, jobs = cron_file(USER_CRONTAB, user_field=False)
    assert len(jobs) == 2 and env["SHELL"] == "/bin/sh"
    assert "CRON_TZ" not in env, "Debian's cron ignores CRON_TZ: test the UTC hour instead"
    env_d, jobs_d = cron_file(CRON_D, user_field=True)
    assert len(jobs_d) == 2 and env_d["SHELL"] == "/bin/sh"
    assert {job.user for job in jobs_d} == {"gscsync"}
    for path, job in cron_jobs():
        where = f"{path.name}:{job.lineno}"
        assert not re.search(r"(?<!\\)%", job.raw), f"{where}: an unescaped % ends the command"
        # Crons without CRON_TZ run at local time: the UTC hour is tested by the command.
        assert job.schedule == ["0", "*", "*", "*", "*"], where
        assert re.match(r'\[ "\$\(date -u \+%H\)" = \d\d \] \|\| exit 0; cd ', job.command), where
        # Logs go where the user can write; never to a file in /var/log itself.
        assert "/var/log/gscsync.log" not in job.raw, where


def test_cron_d_names_the_user_before_the_command() -> None:
    for job in cron_file(CRON_D, user_field=True)[1]:
        assert job.user == "gscsync" and job.command.startswith("[ "), job.raw


# --- gscsync commands ------------------------------------------------------------------

ROOT: Any = typer.main.get_command(app)  # a click Group (typer's own copy of click in 0.29+)
OPERATORS = {";", "&&", "||", "|", "&", "(", ")"}


def shell_invocations(command: str) -> list[list[str]]:
    """The argv of each simple command in a shell command line (assignments and
    redirections removed)."""
    command = re.sub(r"(?<=\s)\d+(?=[<>])", "", command)  # 2>>FILE, 2>&1: drop the fd
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    tokens = list(lexer)
    commands: list[list[str]] = [[]]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in OPERATORS:
            commands.append([])
        elif token[0] in "<>":
            i += 1  # the redirection's target
        elif not commands[-1] and re.fullmatch(r"[A-Za-z_]\w*=.*", token, re.S):
            pass  # VAR=value before the command
        else:
            commands[-1].append(token)
        i += 1
    return [c for c in commands if c]


def gscsync_argvs(argvs: list[list[str]]) -> list[list[str]]:
    return [argv[1:] for argv in argvs if Path(argv[0]).name == "gscsync"]


def check_gscsync_args(args: list[str], where: str) -> str:
    """Parse ``gscsync ARGS`` with the real command line; returns the subcommand."""
    assert args, f"{where}: gscsync without a command"
    sub, rest = args[0], args[1:]
    assert sub in ROOT.commands, f"{where}: no gscsync command {sub!r}"
    try:
        ROOT.commands[sub].make_context(sub, list(rest))
    except Exception as exc:  # click's usage errors, from click or typer's copy of it
        pytest.fail(f"{where}: gscsync {' '.join(args)}: {exc}")
    return sub


def test_every_gscsync_command_in_the_examples_parses() -> None:
    seen: list[str] = []
    for path, job in cron_jobs():
        for args in gscsync_argvs(shell_invocations(job.command)):
            seen.append(check_gscsync_args(args, f"{path.name}:{job.lineno}"))
    for name, unit in systemd_units().items():
        for line in unit.get("Service", {}).get("ExecStart", []):
            argv = shlex.split(line.lstrip("-@+!:"))
            for args in gscsync_argvs([argv]):
                seen.append(check_gscsync_args(args, name))
    for container in k8s_containers():
        argv = [*container.get("command", []), *container.get("args", [])]
        if argv and Path(argv[0]).name == "gscsync":
            seen.append(check_gscsync_args(argv[1:], f"cronjob.yaml {container['name']}"))
    # The sync and the health check of each flavour: cron, cron.d, systemd, Kubernetes (a
    # cron check runs status twice: quietly, then for the table cron mails).
    assert seen.count("sync") == 4 and seen.count("status") == 6 and len(seen) == 10


def test_commands_in_comments_name_real_commands_and_flags() -> None:
    """Commands shown in comments (``.../bin/gscsync sync --reset-breaker``) exist too."""
    for path in sorted(p for p in EXAMPLES.rglob("*") if p.is_file()):
        text = path.read_text()
        for m in re.finditer(r"bin/gscsync (\S+)((?: --?[a-z][\w-]*)*)", text):
            sub = m[1]
            assert sub in ROOT.commands, f"{path.name}: no gscsync command {sub!r}"
            flags = {o for p in ROOT.commands[sub].params for o in p.opts + p.secondary_opts}
            for flag in m[2].split():
                assert flag in flags, f"{path.name}: gscsync {sub} has no {flag}"


# --- variables -------------------------------------------------------------------------


def test_every_variable_named_is_a_gscsync_setting_or_a_known_outside_one() -> None:
    names: dict[str, set[str]] = {}

    def saw(name: str, where: str) -> None:
        names.setdefault(name, set()).add(where)

    for path in sorted(p for p in EXAMPLES.rglob("*") if p.is_file()):
        for name in re.findall(r"\b(GSCSYNC_[A-Z0-9_]+)", path.read_text()):
            saw(name, str(path.relative_to(EXAMPLES)))
    for path, user_field in ((USER_CRONTAB, False), (CRON_D, True)):
        env, jobs = cron_file(path, user_field=user_field)
        for name in env:
            saw(name, path.name)
        for job in jobs:
            for name in re.findall(r"\$\{?([A-Za-z_]\w*)", job.command):
                saw(name, path.name)
    for line in ENV_FILE.read_text().splitlines():
        if m := re.match(r"\s*#?\s*([A-Z][A-Z0-9_]*)=", line):
            saw(m[1], ENV_FILE.name)
    for name, unit in systemd_units().items():
        for assignment in unit.get("Service", {}).get("Environment", []):
            for word in shlex.split(assignment):
                saw(word.split("=", 1)[0], name)
    for container in k8s_containers():
        for var in container.get("env", []):
            saw(var["name"], K8S.name)
    for name in re.findall(r"\$\(([A-Za-z_]\w*)\)", K8S.read_text()):
        saw(name, K8S.name)
    unknown = {n: sorted(w) for n, w in names.items() if n not in GSCSYNC_NAMES | EXTERNAL_NAMES}
    assert not unknown, f"not a gscsync setting nor a known outside variable: {unknown}"
    assert "GSCSYNC_MAX_RUNTIME" in names and "JOB_COMPLETION_INDEX" in names


def test_the_env_file_loads_with_gscsync_and_leaves_the_runtime_limit_to_the_schedule() -> None:
    settings = load_settings({}, environ={}, env_file=ENV_FILE)
    assert settings.db == Path("/var/lib/gscsync/gscsync.db")
    assert settings.credentials == Path("/etc/gscsync/credentials.json")
    assert settings.sites and settings.max_runtime is None
    for line in ENV_FILE.read_text().splitlines():  # lines systemd and dotenv read alike
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s\"'#]+", line), line
    writable = systemd_units()["gscsync.service"]["Service"]["ReadWritePaths"]
    assert str(settings.db.parent) in writable
    for job in cron_file(CRON_D, user_field=True)[1]:
        assert f"cd {settings.db.parent} " in job.command
        assert f"--env-file /etc/gscsync/{ENV_FILE.name}" in job.command


# --- systemd ---------------------------------------------------------------------------

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """A systemd unit file as section -> key -> values (a key may repeat)."""
    unit: Unit = {}
    section = None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if m := re.fullmatch(r"\[([A-Za-z]+)\]", line):
            section = m[1]
            unit.setdefault(section, {})
            continue
        key, sep, value = line.partition("=")
        assert section and sep and re.fullmatch(r"[A-Za-z]+", key.strip()), f"line {lineno}"
        assert not value.rstrip().endswith("\\"), f"line {lineno}: no continuation lines"
        unit[section].setdefault(key.strip(), []).append(value.strip())
    return unit


def systemd_units() -> dict[str, Unit]:
    return {name: parse_unit((SYSTEMD / name).read_text()) for name in UNITS}


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, f"[{section}] {key} set {len(values)} times"
    return values[0]


def timespan(text: str) -> int:
    """Seconds in a systemd time span (``15min``, ``1h``, ``1h 30min``, ``90``)."""
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": HOUR, "hr": HOUR, "d": 86400}
    total = 0
    for number, unit in re.findall(r"(\d+)\s*([a-z]*)", text):
        total += int(number) * units[unit or "s"]
    return total


def calendar_daily_utc(spec: str) -> int:
    """The second of the UTC day of an ``*-*-* HH:MM:SS UTC`` calendar event."""
    m = re.fullmatch(r"\*-\*-\* (\d\d):(\d\d):(\d\d) UTC", spec)
    assert m, f"OnCalendar={spec}: expected every day at a UTC time"
    return int(m[1]) * HOUR + int(m[2]) * 60 + int(m[3])


def test_systemd_units_carry_the_required_settings() -> None:
    units = systemd_units()
    service, timer = units["gscsync.service"], units["gscsync.timer"]
    status, status_timer = units["gscsync-status.service"], units["gscsync-status.timer"]
    for name in ("gscsync.service", "gscsync-status.service"):
        unit = units[name]
        assert one(unit, "Service", "Type") == "oneshot", name
        assert one(unit, "Service", "User") == "gscsync", name
        assert one(unit, "Service", "WorkingDirectory") == "/var/lib/gscsync", name
        assert one(unit, "Service", "EnvironmentFile") == "/etc/gscsync/gscsync.env", name
        assert one(unit, "Service", "ProtectSystem") == "strict", name
        assert one(unit, "Service", "ProtectHome") in ("yes", "read-only", "tmpfs"), name
        assert one(unit, "Service", "NoNewPrivileges") == "yes", name
        assert one(unit, "Service", "PrivateTmp") == "yes", name
    assert "75" in one(service, "Service", "SuccessExitStatus").split()
    assert one(service, "Service", "ReadWritePaths") == "/var/lib/gscsync"
    assert "ReadWritePaths" not in status["Service"], "status only reads"
    assert one(service, "Unit", "After") == "network-online.target"
    assert one(status, "Unit", "After") == "gscsync.service"
    assert calendar_daily_utc(one(timer, "Timer", "OnCalendar")) == 4 * HOUR
    assert one(timer, "Timer", "Persistent") == "true"
    assert timespan(one(timer, "Timer", "RandomizedDelaySec")) > 0
    assert calendar_daily_utc(one(status_timer, "Timer", "OnCalendar")) > 4 * HOUR
    for name in ("gscsync.timer", "gscsync-status.timer"):
        assert one(units[name], "Install", "WantedBy") == "timers.target"


def systemd_analyze_works(tmp: Path) -> bool:
    """Whether ``systemd-analyze verify`` runs here (it needs no running systemd)."""
    if shutil.which("systemd-analyze") is None:
        return False
    probe = tmp / "gscsync-probe.service"
    probe.write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
    try:
        run = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(probe)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        probe.unlink()
    return run.returncode == 0


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on copies whose ExecStart names the installed gscsync (it
    refuses a program that does not exist). Where the tool does not run, only this
    sub-check is left out: the units are still parsed above and below."""
    units = systemd_units()
    assert all(one(units[n], "Service", "ExecStart") for n in UNITS if n.endswith(".service"))
    if not systemd_analyze_works(tmp_path):
        return  # no usable systemd-analyze here: nothing more to check
    program = shutil.which("gscsync") or str(Path(sys.executable).with_name("gscsync"))
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        (tmp_path / name).write_text(text.replace("/opt/gscsync/venv/bin/gscsync", program))
    run = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in UNITS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    ours = [line for line in (run.stdout + run.stderr).splitlines() if str(tmp_path) in line]
    assert run.returncode == 0 and not ours, run.stdout + run.stderr


# --- Kubernetes ------------------------------------------------------------------------


def k8s_documents() -> list[Any]:
    docs = [d for d in yaml.safe_load_all(K8S.read_text()) if d]
    assert all(isinstance(d, dict) for d in docs)
    return docs


def cronjobs() -> dict[str, Any]:
    return {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "CronJob"}


def k8s_containers() -> list[Any]:
    pods = [c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for c in cronjobs().values()]
    return [c for pod in pods for c in pod.get("initContainers", []) + pod["containers"]]


def env_of(container: Any) -> dict[str, str]:
    return {v["name"]: v.get("value") for v in container.get("env", [])}


def test_kubernetes_cronjob_shards_one_indexed_job() -> None:
    docs = k8s_documents()
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    jobs = cronjobs()
    assert set(jobs) == {"gscsync", "gscsync-status"}
    sync = jobs["gscsync"]["spec"]
    assert sync["schedule"] == "0 4 * * *" and sync["timeZone"] == "Etc/UTC"
    assert sync["concurrencyPolicy"] == "Forbid"
    job = sync["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (main,) = [c for c in pod["containers"] if c["name"] == "gscsync"]
    env = env_of(main)
    shards = int(env["GSCSYNC_SHARDS"])
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == shards > 1
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    assert env["GSCSYNC_DB"].startswith("/data/")

    # Exit codes: 75 ignored, 2 and 3 fail the Job, evictions ignored, the rest per shard.
    actions: dict[int, str] = {}
    for rule in job["podFailurePolicy"]["rules"]:
        codes = rule.get("onExitCodes")
        if codes:
            assert codes["containerName"] == "gscsync" and codes["operator"] == "In"
            actions.update(dict.fromkeys(codes["values"], rule["action"]))
        else:
            assert rule["onPodConditions"] == [{"type": "DisruptionTarget"}]
            assert rule["action"] == "Ignore"
    assert actions == {75: "Ignore", 2: "FailJob", 3: "FailJob", 4: "FailIndex"}
    assert job["backoffLimitPerIndex"] >= 1  # exit 1 or 130: one more try for that shard
    assert "backoffLimit" not in job or job["backoffLimit"] >= shards * 2

    # Storage: one claim, each shard in its own directory, created as the pod's user.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] in claims
    assert mounts["data"]["subPathExpr"] == "shard-$(JOB_COMPLETION_INDEX)"
    assert Path(env["GSCSYNC_DB"]).parent == Path(mounts["data"]["mountPath"])
    (init,) = pod["initContainers"]
    assert init["command"][-1].endswith("/shard-$(JOB_COMPLETION_INDEX)")
    assert pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]

    # Credentials: a Secret, mounted read-only, named by GSCSYNC_CREDENTIALS.
    assert "secretName" in volumes["credentials"]["secret"]
    assert mounts["credentials"]["readOnly"] is True
    assert Path(env["GSCSYNC_CREDENTIALS"]).parent == Path(mounts["credentials"]["mountPath"])
    assert volumes["credentials"]["secret"]["defaultMode"] & 0o007 == 0  # not world-readable

    # Non-root, bounded, no API token.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]

    # The health check: every shard of the same claim, read-only, at 08:00 UTC.
    status = jobs["gscsync-status"]["spec"]
    assert status["timeZone"] == "Etc/UTC"
    status_job = status["jobTemplate"]["spec"]
    status_pod = status_job["template"]["spec"]
    assert status_job["completionMode"] == "Indexed"
    assert status_job["completions"] == status_job["parallelism"] == shards
    (check,) = status_pod["containers"]
    assert env_of(check)["GSCSYNC_DB"] == env["GSCSYNC_DB"]
    (data,) = check["volumeMounts"]
    assert data["subPathExpr"] == mounts["data"]["subPathExpr"] and data["readOnly"] is True
    status_volumes = {v["name"]: v for v in status_pod["volumes"]}
    assert status_volumes["data"] == volumes["data"]


# --- timing: one missed run is caught, none is imagined --------------------------------


@dataclass
class Timing:
    flavour: str
    sync_at: int  # seconds into the UTC day
    delay: int  # the most a start may be delayed
    runtime: int  # GSCSYNC_MAX_RUNTIME
    check_at: int
    max_age_hours: float


def max_age_of(args: list[str]) -> float:
    return float(args[args.index("--max-age") + 1])


def cron_timing(path: Path, user_field: bool) -> Timing:
    sync, status = cron_file(path, user_field=user_field)[1]
    hours = [int(re.search(r"= (\d\d) \]", j.command)[1]) * HOUR for j in (sync, status)]
    runtime = int(re.search(r"GSCSYNC_MAX_RUNTIME=(\d+)", sync.command)[1])
    args = gscsync_argvs(shell_invocations(status.command))[0]
    return Timing(path.name, hours[0], 0, runtime, hours[1], max_age_of(args))


def systemd_timing() -> Timing:
    u = systemd_units()
    (env,) = [e for e in u["gscsync.service"]["Service"]["Environment"] if "MAX_RUNTIME" in e]
    name, _, value = env.partition("=")
    assert name == "GSCSYNC_MAX_RUNTIME"
    # The backstop comes after gscsync's own limit.
    assert timespan(one(u["gscsync.service"], "Service", "TimeoutStartSec")) > int(value)
    return Timing(
        "systemd",
        calendar_daily_utc(one(u["gscsync.timer"], "Timer", "OnCalendar")),
        timespan(one(u["gscsync.timer"], "Timer", "RandomizedDelaySec")),
        int(value),
        calendar_daily_utc(one(u["gscsync-status.timer"], "Timer", "OnCalendar")),
        max_age_of(shlex.split(one(u["gscsync-status.service"], "Service", "ExecStart"))),
    )


def k8s_timing() -> Timing:
    jobs = cronjobs()

    def at(schedule: str) -> int:
        minute, hour, *rest = schedule.split()
        assert rest == ["*", "*", "*"]
        return int(hour) * HOUR + int(minute) * 60

    sync = jobs["gscsync"]["spec"]
    job = sync["jobTemplate"]["spec"]
    (main,) = job["template"]["spec"]["containers"]
    runtime = int(env_of(main)["GSCSYNC_MAX_RUNTIME"])
    assert job["activeDeadlineSeconds"] > runtime
    (check,) = jobs["gscsync-status"]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ]
    return Timing(
        "kubernetes",
        at(sync["schedule"]),
        0,
        runtime,
        at(jobs["gscsync-status"]["spec"]["schedule"]),
        max_age_of(check["args"]),
    )


def test_the_health_check_catches_one_missed_run_and_never_a_healthy_one() -> None:
    timings = [
        cron_timing(USER_CRONTAB, False),
        cron_timing(CRON_D, True),
        systemd_timing(),
        k8s_timing(),
    ]
    for t in timings:
        latest_end = t.sync_at + t.delay + t.runtime
        max_age = t.max_age_hours * HOUR
        assert t.runtime < HOUR, f"{t.flavour}: a run should end inside its hour"
        # While every daily sync runs, the last finished one is at most a day plus one
        # run's delay and runtime old, at any hour: no false alarm from a check at any time.
        assert 24 * HOUR + t.delay + t.runtime < max_age, t
        # The check comes after the latest end of the day's sync...
        assert t.check_at > latest_end, t
        # ...and one missed sync makes the last finished one older than --max-age there.
        assert 24 * HOUR + (t.check_at - latest_end) > max_age, t
        assert t.max_age_hours == 26, t


# --- the cron lines, run -----------------------------------------------------------------


FAKE_GSCSYNC = """#!/bin/sh
echo "$* MAX_RUNTIME=${GSCSYNC_MAX_RUNTIME:-none} in $(pwd)" >>"$FAKE_CALLS"
echo "a log line" >&2
[ "$1" = status ] && [ "$FAKE_RC" != 0 ] && echo "the status table"
exit "$FAKE_RC"
"""


@dataclass
class CronBox:
    """A sandbox in which cron lines run with ``sh``: a fake ``date`` that says the hour,
    and a fake gscsync that records its calls and exits with the code asked for."""

    root: Path
    home: Path
    program: Path
    workdir: Path
    logdir: Path

    def run(
        self, job: CronJob, path_line: str, hour: str, rc: int = 0
    ) -> tuple[str, list[str], str]:
        calls = self.root / "calls"
        calls.unlink(missing_ok=True)
        command = (
            job.command.replace("/opt/gscsync/venv/bin/gscsync", str(self.program))
            .replace("/var/lib/gscsync", str(self.workdir))
            .replace("/var/log/gscsync", str(self.logdir))
        )
        env = {
            "HOME": str(self.home),
            "PATH": f"{self.root / 'bin'}:{path_line}",
            "FAKE_HOUR": hour,
            "FAKE_RC": str(rc),
            "FAKE_CALLS": str(calls),
        }
        run = subprocess.run(
            ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=30
        )
        made = calls.read_text().splitlines() if calls.exists() else []
        logfile = self.logdir / "gscsync.log"
        log = logfile.read_text() if logfile.exists() else ""
        logfile.unlink(missing_ok=True)
        return run.stdout + run.stderr, made, log


def cron_box(tmp_path: Path, *, system: bool) -> CronBox:
    home = tmp_path / "home"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "date").write_text('#!/bin/sh\necho "$FAKE_HOUR"\n')
    if system:
        program, workdir, logdir = tmp_path / "opt/gscsync", tmp_path / "lib", tmp_path / "log"
    else:
        workdir = home / "gscsync"
        program, logdir = workdir / ".venv/bin/gscsync", home / ".local/state/gscsync"
    program.parent.mkdir(parents=True)
    program.write_text(FAKE_GSCSYNC)
    workdir.mkdir(parents=True, exist_ok=True)
    logdir.mkdir(parents=True)
    for script in (bindir / "date", program):
        script.chmod(0o755)
    return CronBox(tmp_path, home, program, workdir, logdir)


@pytest.mark.parametrize("system", [False, True], ids=["crontab", "cron.d"])
def test_cron_lines_run_at_their_utc_hour_and_stay_quiet_on_0_and_75(
    tmp_path: Path, system: bool
) -> None:
    path = CRON_D if system else USER_CRONTAB
    env, (sync, status) = cron_file(path, user_field=system)
    box = cron_box(tmp_path, system=system)
    path_line = env["PATH"]

    for hour in ("03", "05", "08"):  # not its hour: nothing runs, nothing is printed
        assert box.run(sync, path_line, hour) == ("", [], "")
    output, calls, log = box.run(sync, path_line, "04")
    assert output == "" and log == "a log line\n"
    assert len(calls) == 1 and calls[0].startswith("sync ")
    assert "--log-format json" in calls[0] and "MAX_RUNTIME=3300" in calls[0]
    assert calls[0].endswith(f"in {box.workdir}")
    assert box.run(sync, path_line, "04", rc=75)[0] == "", "75 is not a failure"
    for rc in (1, 2, 3, 4, 130):  # cron mails this line
        output, _, log = box.run(sync, path_line, "04", rc=rc)
        assert "gscsync sync failed: see" in output and log, rc

    assert box.run(status, path_line, "04") == ("", [], "")
    output, calls, _ = box.run(status, path_line, "08")
    assert output == "" and len(calls) == 1 and "status" in calls[0]
    assert "MAX_RUNTIME=none" in calls[0]
    output, calls, _ = box.run(status, path_line, "08", rc=1)
    assert "the status table" in output and len(calls) == 2  # quiet probe, then the table

    shutil.rmtree(box.logdir)  # a log directory that is missing is loud, not silent
    output, calls, _ = box.run(sync, path_line, "04")
    assert calls == [] and "gscsync sync failed" in output and "gscsync.log" in output


def test_logrotate_rotates_the_cron_d_log_as_its_user() -> None:
    text = LOGROTATE.read_text()
    (job, _) = cron_file(CRON_D, user_field=True)[1]
    log = re.search(r"2>>(\S+)", job.command)[1]
    assert re.search(rf"^{re.escape(log)} \{{", text, re.M)
    assert re.search(rf"^\s+su {job.user} {job.user}$", text, re.M)
    assert re.search(rf"^\s+create 0640 {job.user} {job.user}$", text, re.M)
    settings = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "copytruncate" in line]  # each run opens it anew


def test_examples_are_all_covered() -> None:
    """A new example file gets a check here too."""
    files = {str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*") if p.is_file()}
    assert files == {
        "crontab",
        "cron.d/gscsync",
        "gscsync.env",
        "logrotate/gscsync",
        "kubernetes/cronjob.yaml",
        *(f"systemd/{n}" for n in UNITS),
    }
