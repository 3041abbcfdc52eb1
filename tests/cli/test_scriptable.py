"""The CLI in scripts and CI: `check` through a pipe is one line per problem, `--json` parses and carries the
documented keys, `--version` names the package and the default config's version."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from worker.cli.commands import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config/routing.example.yaml"
CHECK_KEYS = {"config", "valid", "version", "counts", "fallback", "errors", "warnings"}
PROBLEM_KEYS = {"file", "line", "path", "message", "text", "check"}  # check: which static check (docs/rule-checks.md)
runner = CliRunner()


def broken(tmp_path: Path) -> Path:
    """The example with two errors, one of them naming a rep far longer than any terminal is wide."""
    long_name = "mikey_" + "x" * 120
    text = EXAMPLE.read_text().replace("members: [sarah, mike]", f"members: [sarah, {long_name}]")
    text = text.replace("assign: {pool: smb}", "assign: {pool: smbb}", 1)
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return path


def piped(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI with stdout and stderr on pipes at a narrow COLUMNS: what CI and `grep` see."""
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "60", **env}, timeout=120)


def test_check_through_a_pipe_has_exactly_one_line_per_problem(tmp_path: Path) -> None:
    result = piped("check", str(broken(tmp_path)))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    problems = [line for line in lines if line.startswith("error ")]
    assert len(problems) == 2 and lines == [*problems, "2 error(s); the configuration was not loaded."]
    assert all(re.match(r"^error .*routing\.yaml:\d+: \S+: ", line) for line in problems)
    assert any("x" * 120 in line for line in problems)  # never folded at the terminal width
    assert "\x1b[" not in result.stderr


def test_check_warnings_and_the_ok_line_are_one_line_each_through_a_pipe() -> None:
    result = piped("check", str(EXAMPLE))
    assert result.returncode == 0
    (ok,) = result.stdout.splitlines()
    assert ok.startswith(f"{EXAMPLE}: OK (version ") and ok.endswith("fallback queue triage")
    warnings = result.stderr.splitlines()
    assert warnings and all(re.match(r"^warning .*routing\.example\.yaml:\d+: ", w) for w in warnings)


def test_check_json_when_valid() -> None:
    result = runner.invoke(app, ["check", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == CHECK_KEYS
    assert data["valid"] is True and re.fullmatch(r"[0-9a-f]{12}", data["version"])
    assert data["counts"] == {"reps": 8, "pools": 3, "territories": 4, "rules": 10}
    assert data["fallback"] == {"queue": "triage"} and data["errors"] == []
    assert data["warnings"] and all(set(w) == PROBLEM_KEYS for w in data["warnings"])


def test_check_json_when_invalid_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(broken(tmp_path)), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert set(data) == CHECK_KEYS and data["valid"] is False and data["version"] is None
    assert len(data["errors"]) == 2 and all(set(e) == PROBLEM_KEYS for e in data["errors"])
    assert any("unknown pool 'smbb'" in e["message"] and isinstance(e["line"], int) for e in data["errors"])


def test_version_prints_the_package_and_the_default_configs_version_hash() -> None:
    from importlib import metadata  # the installed package's own record, to compare with

    from worker.config import load_config  # the hash the config itself has

    result = piped("--version", LEADROUTE_CONFIG=str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"leadroute {metadata.version('leadroute')}",
        f"config {EXAMPLE}: version {load_config(EXAMPLE).version_hash}",
    ]


def test_version_with_an_invalid_default_config_says_so(tmp_path: Path) -> None:
    result = piped("--version", LEADROUTE_CONFIG=str(broken(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].endswith("invalid (2 error(s); run `leadroute check " f"{tmp_path / 'routing.yaml'}`)")


def test_shell_completion_completes_commands_and_options() -> None:
    # the installed `leadroute` script (completion is keyed by the program's name); what the script
    # `leadroute --show-completion bash` prints runs it with these variables set
    leadroute = str(Path(sys.executable).parent / "leadroute")

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([leadroute, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)

    def complete(words: str) -> list[str]:
        cword = str(len(words.split()) - 1)
        return run(COMP_WORDS=words, COMP_CWORD=cword, _LEADROUTE_COMPLETE="complete_bash").stdout.split()

    assert complete("leadroute sim") == ["simulate"]
    assert complete("leadroute simulate --su") == ["--summary"]
    # --show-completion prints the script for the shell it is run from (found up the process tree)
    script = subprocess.run(["bash", "-c", f"{leadroute} --show-completion; exit $?"], capture_output=True, text=True,
                            env={**os.environ, "SHELL": "/bin/bash"}, timeout=120)
    assert script.returncode == 0 and "_LEADROUTE_COMPLETE=complete_bash" in script.stdout, script.stderr


def test_log_lines_go_to_stderr_so_stdout_holds_only_the_commands_output() -> None:
    # a command whose step logs a warning on its way (as a ledger it cannot write does): stdout stays one JSON document
    script = (
        "import json, sys, structlog\n"
        "from worker.cli.commands import app, main\n"
        "@app.command('noisy')\n"
        "def noisy() -> None:\n"
        "    structlog.get_logger('leadroute.test').warning('ledger_unwritable', path='/nowhere')\n"
        "    structlog.get_logger('leadroute.test').info('routine_detail')\n"
        "    print(json.dumps({'ok': True}))\n"
        "sys.argv = ['leadroute', 'noisy']\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LEADROUTE_LOG_LEVEL", "LEADROUTE_LOG_FORMAT")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True}
    assert "ledger_unwritable" in result.stderr and "routine_detail" not in result.stderr  # warnings and worse only
