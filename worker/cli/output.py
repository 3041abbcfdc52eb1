"""Where a command's text goes: stdout, or a file with a note on stderr, so stdout carries only the data."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console


def emit(text: str, out_file: Path | None, err: Console) -> None:
    """Write ``text`` to stdout, or to ``out_file`` and say so on ``err`` (never on stdout, which may be piped)."""
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.write_text(text, encoding="utf-8")
        err.print(f"wrote {out_file}")
