"""`leadroute simulate` on exports far bigger than a screen: bounded memory, the summary first, every row on request,
progress on a terminal only, and pool balance that counts only the leads each member was eligible for."""

from __future__ import annotations

import csv
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

from typer.testing import CliRunner

from worker.cli.commands import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "config/routing.example.yaml")
LEADS = ROOT / "config/leads.example.csv"
RSS_CEILING_MB = 160  # the CLI alone is about 105 MB; 200,000 decisions kept in memory were well over 1 GB
runner = CliRunner()


def generated(path: Path, n: int, only: str | None = None) -> Path:
    """``n`` rows cycling through the example export (or only its row ``only``), each with its own id and the
    example's created_at, so the routing time is in the file and not today's date."""
    with LEADS.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if only is not None:
        rows = [r for r in rows if r["id"] == only]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for i in range(n):
            writer.writerow({**rows[i % len(rows)], "id": f"G{i:06d}"})
    return path


def cli(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **kwargs)


def test_simulate_on_200000_rows_stays_under_a_fixed_memory_ceiling(tmp_path: Path) -> None:
    leads = generated(tmp_path / "leads.csv", 200_000)
    # The child's own high-water mark (VmHWM, of the memory it exec'd into): getrusage's ru_maxrss
    # would also carry the RSS of the pytest process it was forked from.
    measure = (
        "import runpy, sys\n"
        f"sys.argv = ['leadroute', 'simulate', '-c', {EXAMPLE!r}, '-l', {str(leads)!r}]\n"
        "try:\n"
        "    runpy.run_module('worker.cli', run_name='__main__')\n"
        "finally:\n"
        "    hwm = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
        "    print('MAXRSS_KB', hwm, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", measure], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rss_kb = int(result.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0])
    assert rss_kb < RSS_CEILING_MB * 1024, f"peak RSS {rss_kb / 1024:.0f} MB"
    assert "200,000 leads" in result.stdout
    assert "200,000 decisions are more than a screenful" in result.stdout
    assert "--format jsonl, or --out FILE" in result.stdout
    assert "G000000" not in result.stdout  # no decision rows: the summary is the whole answer


def test_more_than_a_screenful_prints_the_summary_and_says_how_to_get_every_row(tmp_path: Path) -> None:
    leads = generated(tmp_path / "leads.csv", 51)
    result = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", str(leads)])
    assert result.exit_code == 0, result.output
    assert "51 leads" in result.output and "Leads per owner" in result.output
    assert "51 decisions are more than a screenful, so only the summary is shown; for every row use --format jsonl, " \
           "or --out FILE" in result.output
    assert "G000000" not in result.output
    fits = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", str(generated(tmp_path / "few.csv", 50))])
    assert "G000049" in fits.output and "screenful" not in fits.output


def test_summary_only_prints_no_decisions(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", str(LEADS), "--summary"])
    assert result.exit_code == 0, result.output
    assert "36 leads" in result.output and "pool smb" in result.output
    assert "L001" not in result.output and "screenful" not in result.output
    jsonl = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", str(LEADS), "--summary", "-f", "jsonl"])
    assert "36 leads" in jsonl.output and '"lead_id"' not in jsonl.output


def test_out_writes_every_decision_and_stdout_keeps_the_summary(tmp_path: Path) -> None:
    leads = generated(tmp_path / "leads.csv", 120)
    rows = tmp_path / "decisions.jsonl"
    result = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", str(leads), "-f", "jsonl", "--out", str(rows)])
    assert result.exit_code == 0, result.output
    decisions = [json.loads(line) for line in rows.read_text().splitlines()]
    assert [d["lead_id"] for d in decisions] == [f"G{i:06d}" for i in range(120)]
    assert "120 leads" in result.output and '"lead_id"' not in result.output
    table = tmp_path / "decisions.tsv"
    result = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", str(leads), "--out", str(table)])
    assert result.exit_code == 0, result.output
    lines = table.read_text().splitlines()
    assert lines[0] == "lead\towner\trule\treason" and len(lines) == 121
    assert all(len(line.split("\t")) == 4 for line in lines)
    assert "screenful" not in result.output and "wrote 120 decisions" in result.output


def test_balance_does_not_count_leads_a_member_could_not_take(tmp_path: Path) -> None:
    # the case: every row a free-mail demo request for pool smb; raj is out of office and tom fills his
    # capacity of 40, so kim takes the rest. Counting all leads called that "spread 16573"; it is fair.
    leads = generated(tmp_path / "leads.csv", 2_000, only="L024")
    result = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", str(leads), "--summary"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("pool smb"))
    # round robin alternates tom and kim over the 79 leads before tom is full: tom got the odd one
    assert line == ("pool smb (round_robin): 2,000 leads; tom 40 of 79 eligible (expected 39.5), raj 0 of 0 eligible, "
                    "kim 1,960 of 2,000 eligible (expected 1,960.5); max/min 1.01, gini 0.003")
    assert "passed over (not counted against them): raj ooo 2,000; tom at_capacity 1,921" in result.output


def _under_a_pty(args: list[str], env: dict[str, str]) -> tuple[str, str]:
    """Run the CLI with stderr on a pseudo-terminal and stdout on a pipe; (stdout, what the terminal got)."""
    master, slave = pty.openpty()
    seen: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "worker.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=slave, text=True, env={**os.environ, "TERM": "xterm", **env}, timeout=300)
    finally:
        os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    assert proc.returncode == 0
    return proc.stdout, b"".join(seen).decode("utf-8", "replace")


def test_progress_is_drawn_on_a_terminal_and_not_in_a_pipe(tmp_path: Path) -> None:
    leads = generated(tmp_path / "leads.csv", 20_000)
    args = ["simulate", "-c", EXAMPLE, "-l", str(leads), "--summary"]
    stdout, terminal = _under_a_pty(args, {"LEADROUTE_PROGRESS_EVERY": ""})
    assert "routing leads" in terminal and "leads/s" in terminal
    assert "routing leads" not in stdout and "20,000 leads" in stdout
    piped = cli(*args, env={"LEADROUTE_PROGRESS_EVERY": ""})
    assert piped.returncode == 0, piped.stderr
    assert "routing leads" not in piped.stderr and "\x1b[" not in piped.stderr


def test_a_pipe_gets_a_plain_progress_line_when_asked(tmp_path: Path) -> None:
    leads = generated(tmp_path / "leads.csv", 2_000)
    piped = cli("simulate", "-c", EXAMPLE, "-l", str(leads), "--summary", env={"LEADROUTE_PROGRESS_EVERY": "0"})
    assert piped.returncode == 0, piped.stderr
    lines = [x for x in piped.stderr.splitlines() if x.startswith("routing leads:")]
    assert lines and all("leads/s" in x and "%" in x and "\x1b[" not in x for x in lines)


def test_simulate_does_not_load_the_reports_sqlalchemy(tmp_path: Path) -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom worker.cli.commands import app\n"
            f"r = CliRunner().invoke(app, ['simulate', '-c', {EXAMPLE!r}, '-l', {str(LEADS)!r}, '--summary'])\n"
            "assert r.exit_code == 0, r.output\nprint(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', "
            "'worker.reports', 'numpy'))))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_json_lines_stay_on_stdout_while_the_terminal_shows_progress(tmp_path: Path) -> None:
    leads = generated(tmp_path / "leads.csv", 5_000)
    stdout, terminal = _under_a_pty(["simulate", "-c", EXAMPLE, "-l", str(leads), "-f", "jsonl"],
                                    {"LEADROUTE_PROGRESS_EVERY": ""})
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [r["lead_id"] for r in rows] == [f"G{i:06d}" for i in range(5_000)]
    assert "routing leads" in terminal and '"lead_id"' not in terminal
