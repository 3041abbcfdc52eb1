"""Progress for long work, on stderr, never in the way of stdout.

* stderr is a terminal: a rich progress bar (done, rate, ETA), erased when the work ends.
* stderr is not a terminal (a pipe, a log, CI): nothing, unless ``LEADROUTE_PROGRESS_EVERY`` is
  a number of seconds, then one plain line that often (``routing leads: 40% 20,000 leads
  1,234 leads/s ETA 0:00:30``).
* ``LEADROUTE_PROGRESS=0`` turns it off everywhere.

Use it as ``with progress("routing leads", total=size, unit="leads") as tick: tick(count, done)``:
``count`` is the items handled so far (the rate is counted in them) and ``done`` how far through
``total`` the work is (bytes of a file, say; the ETA is counted in it). Calling ``tick`` often is
cheap: it redraws at most ten times a second.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

Tick = Callable[[int, int | None], None]
EVERY_ENV = "LEADROUTE_PROGRESS_EVERY"
OFF_ENV = "LEADROUTE_PROGRESS"


def _eta(elapsed: float, done: int | None, total: int | None) -> str:
    if not total or not done or elapsed <= 0:
        return ""
    left = elapsed * (total - done) / done
    return f" ETA {timedelta(seconds=round(max(left, 0)))}"


class _Rate(ProgressColumn):
    """Items handled and their rate (the bar itself runs on ``done``/``total``, which may be bytes)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        count = int(task.fields.get("count", 0))
        elapsed = task.elapsed or 0.0
        rate = f" {count / elapsed:,.0f} {self.unit}/s" if elapsed > 0 and count else ""
        return Text(f"{count:,} {self.unit}{rate}", style="progress.data.speed")


def interval() -> float | None:
    """Seconds between plain progress lines when stderr is not a terminal (None: no lines)."""
    value = os.environ.get(EVERY_ENV, "").strip()
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


@contextmanager
def progress(description: str, total: int | None = None, unit: str = "items", *,
             stream: TextIO | None = None, off: bool = False) -> Iterator[Tick]:
    """A ``tick(count, done=None)`` for the work in the block, drawn as the module docstring says (``off``: never)."""
    stream = stream or sys.stderr
    if off or os.environ.get(OFF_ENV, "").strip() in ("0", "off", "no", "false"):
        yield _nothing
        return
    if stream.isatty():
        with _bar(description, total, unit, stream) as tick:
            yield tick
        return
    every = interval()
    if every is None:
        yield _nothing
        return
    yield _lines(description, total, unit, stream, every)


def _nothing(count: int, done: int | None = None) -> None:
    return None


@contextmanager
def _bar(description: str, total: int | None, unit: str, stream: TextIO) -> Iterator[Tick]:
    console = Console(file=stream, highlight=False)
    bar = Progress(TextColumn(description), BarColumn(), TaskProgressColumn(), _Rate(unit), TimeRemainingColumn(),
                   console=console, transient=True, refresh_per_second=10,
                   redirect_stdout=False, redirect_stderr=False)  # stdout is the command's output: never captured
    task = bar.add_task(description, total=total, count=0)
    last = [0.0]

    def tick(count: int, done: int | None = None) -> None:
        now = time.monotonic()
        if now - last[0] < 0.1:
            return
        last[0] = now
        bar.update(task, completed=count if done is None else done, count=count)

    with bar:
        bar.refresh()
        yield tick


def _lines(description: str, total: int | None, unit: str, stream: TextIO, every: float) -> Tick:
    started = time.monotonic()
    last = [started]

    def tick(count: int, done: int | None = None) -> None:
        now = time.monotonic()
        if now - last[0] < every:
            return
        last[0] = now
        elapsed = now - started
        pct = f" {100 * done / total:.0f}%" if total and done is not None else ""
        rate = f" {count / elapsed:,.0f} {unit}/s" if elapsed > 0 else ""
        stream.write(f"{description}:{pct} {count:,} {unit}{rate}{_eta(elapsed, done, total)}\n")
        stream.flush()

    return tick
