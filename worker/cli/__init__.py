"""The ``leadroute`` command line (:mod:`.commands`) and offline simulation (:mod:`.simulate`)."""

from worker.cli.commands import app, main

__all__ = ["app", "main"]
