"""``leadroute ui``: make the dashboard's users (``docs/dashboard.md``).

``hash-password`` reads a password on stdin and prints its argon2 hash; ``add-user`` adds (or
replaces) one user in ``LEADROUTE_UI_USERS``: in an env file when ``--env-file`` names one (the
line is rewritten in place, every other line kept), else it prints the new
``LEADROUTE_UI_USERS='...'`` line to put where the web process's environment is set.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="The dashboard's users: hash a password, add a user.", no_args_is_help=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_LINE = re.compile(r"^\s*(?:export\s+)?LEADROUTE_UI_USERS=(.*)$")


def _read_password() -> str:
    """The password: typed twice at a terminal (not echoed), else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            err.print("the two passwords differ")
            raise typer.Exit(1)
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        err.print("no password on stdin")
        raise typer.Exit(1)
    return password


@app.command("hash-password")
def hash_password() -> None:
    """Read a password on stdin and print its argon2id hash, for LEADROUTE_UI_USERS."""
    from worker.web.ui.auth import hash_password as make  # argon2 loads for this command only

    sys.stdout.write(make(_read_password()) + "\n")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


@app.command("add-user")
def add_user(
    name: Annotated[str, typer.Argument(help="The login name (letters, digits, . _ - @).")],
    role: Annotated[str, typer.Option(help="viewer (sees everything) or operator (may also act).")] = "viewer",
    env_file: Annotated[Path | None, typer.Option(
        "--env-file", help="Update LEADROUTE_UI_USERS in this env file (created if missing); without it, print the "
        "new value.")] = None,
) -> None:
    """Add or replace a dashboard user; the password is read on stdin (typed twice at a terminal)."""
    from worker.web.ui.auth import ROLES, UiConfigError, User, format_users, hash_password, parse_users  # argon2, here only

    if role not in ROLES:
        err.print(f"--role: '{role}' is not one of {', '.join(ROLES)}")
        raise typer.Exit(1)
    if not re.fullmatch(r"[A-Za-z0-9._@-]+", name):
        err.print(f"'{name}': a name has letters, digits and . _ - @ only")
        raise typer.Exit(1)
    lines: list[str] = []
    current = os.environ.get("LEADROUTE_UI_USERS", "")
    if env_file is not None and env_file.exists():
        lines = env_file.read_text(encoding="utf-8").splitlines()
        current = next((_unquote(m.group(1)) for line in lines if (m := _LINE.match(line))), "")
    try:
        users = parse_users(current) if current.strip() else {}
    except UiConfigError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    replaced = name in users
    users[name] = User(name, role, hash_password(_read_password()))
    line = f"LEADROUTE_UI_USERS='{format_users(users)}'"
    if env_file is None:
        sys.stdout.write(line + "\n")
        return
    kept = [existing for existing in lines if not _LINE.match(existing)]
    env_file.write_text("\n".join([*kept, line]) + "\n", encoding="utf-8")
    err.print(f"{'replaced' if replaced else 'added'} {name} ({role}) in {env_file}")
