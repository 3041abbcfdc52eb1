"""``python -m worker.cli``: the same as the ``leadroute`` command."""

from worker.cli.commands import main

main()
