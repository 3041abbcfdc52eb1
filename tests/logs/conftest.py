"""Logging is process-global: every test here leaves structlog and the root logger as it found them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from worker.observability import logs


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    touched = [logging.getLogger(name) for name in (*logs._NOISY, *logs._OWN_HANDLERS)]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in touched]
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)
    for lg, lg_level, lg_handlers, propagate in saved:
        lg.setLevel(lg_level)
        lg.handlers[:] = lg_handlers
        lg.propagate = propagate
    logging.captureWarnings(False)
