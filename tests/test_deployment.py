"""The deployment examples say the same as the Procfile: the compose file runs each process with the
Procfile's command under a restart policy, the image holds every package pyproject installs, and the
systemd units restart whatever dies (issue 18: "how a crashed process comes back")."""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docs" / "compose" / "compose.yaml"


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, _, command in (line.partition(": ") for line in lines if line.strip())}


def compose_services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def without_schedule_path(argv: list[str]) -> list[str]:
    """The beat schedule file's place differs by design (``var/`` in a checkout, a volume in a container)."""
    return [("SCHEDULE" if i and argv[i - 1] == "--schedule" else arg) for i, arg in enumerate(argv)]


def test_every_procfile_process_runs_in_compose_with_the_same_command() -> None:
    services = compose_services()
    for name, argv in procfile().items():
        assert name in services, f"{name} is in the Procfile but not in {COMPOSE.name}"
        command = shlex.split(services[name]["command"])
        if name == "web":
            argv = [a.replace("${PORT:-8000}", "8000") for a in argv]
        assert without_schedule_path(command) == without_schedule_path(argv), name


def test_every_long_running_service_comes_back_after_a_crash() -> None:
    for name, service in compose_services().items():
        assert service.get("restart") in ("always", "unless-stopped"), f"{name} has no restart policy"


def test_there_is_exactly_one_beat_and_the_worker_may_finish_its_tasks_before_it_is_killed() -> None:
    services = compose_services()
    assert services["beat"]["deploy"]["replicas"] == 1
    grace = int(re.fullmatch(r"(\d+)s", services["worker"]["stop_grace_period"]).group(1))
    assert grace >= 300  # the tasks' hard time limit


def test_the_processes_wait_for_healthy_state_broker_and_ledger() -> None:
    services = compose_services()
    for name in procfile():
        needs = services[name]["depends_on"]
        assert {dep for dep, how in needs.items() if how == {"condition": "service_healthy"}} == {"redis", "rabbitmq", "postgres"}
    assert "--appendonly yes" in services["redis"]["command"]  # a restarted Redis keeps the state


def test_the_image_holds_every_package_pyproject_installs() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\S+) \./\1$", (ROOT / "Dockerfile").read_text(), flags=re.M))
    assert {pattern.rstrip("*") for pattern in include} <= copied


def test_the_image_compiles_the_packages_the_worker_imports_from_its_working_directory() -> None:
    # celery -A imports the app from the working directory (/app, not writable by the image's user): unless the
    # copies there are compiled at build time, every worker and beat start compiles them from source again
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {name for name in re.findall(r"^COPY (\S+) \./\1$", dockerfile, flags=re.M) if (ROOT / name).is_dir()}
    compiled = re.search(r"^RUN python -m compileall -q ((?:\S+ ?)+)$", dockerfile, flags=re.M)
    assert compiled is not None and set(compiled.group(1).split()) >= copied - {"config"}
    assert dockerfile.index("compileall") < dockerfile.index("USER leadroute")  # as root, who may write there


def test_each_systemd_unit_restarts_whatever_ends_it_with_no_start_limit() -> None:
    units = sorted((ROOT / "docs" / "systemd").glob("*.service"))
    assert {u.stem.removeprefix("leadroute-") for u in units} == set(procfile())
    for unit in units:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read_string(unit.read_text())
        assert parser["Service"]["Restart"] == "always", unit.name
        assert parser["Unit"]["StartLimitIntervalSec"] == "0", unit.name
