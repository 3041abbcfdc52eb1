"""``python -m sandbox``: run the sandbox CRM in the foreground (same as ``leadroute sandbox``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .run import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    parser.add_argument("--seed", type=Path, default=None, help="seed JSON file (default: the bundled seed)")
    parser.add_argument("--env-file", type=Path, default=None, help="write KEY=value connection variables here")
    parser.add_argument("--info-file", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    serve(port=args.port, seed=args.seed, env_file=args.env_file, host=args.host, info_file=args.info_file)


if __name__ == "__main__":
    main()
