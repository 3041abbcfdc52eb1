"""Only the store touches Redis keys.

Every key layout is named once, in ``worker/store/keys.py``, and every read or write of a
key and every Lua script lives in ``worker/store/``. The rest of the worker asks the store
for what it needs by what it means (``store.mark_polled(crm)``, ``store.rearm(...)``), never
by key. So outside ``worker/store/`` no module:

* reaches through a store to its Redis connection (``store.client.get(...)``,
  ``rt.pending.client.zadd(...)``);
* builds a key from a store (``store.key("polled", crm)``, ``store.keys.written(key)``);
* spells a key layout in a string (``f"{prefix}:pending:{crm}"``, ``"leadroute:loads"``,
  ``"timers:payload"``);
* carries a Lua script or registers one (``redis.call(...)``, ``.register_script(...)``).

Handing the store's connection to a library (the connectors' rate limiters) goes through
a store method (``store.for_connectors()``), which this does not forbid.

The modules are read as source (``ast``), so this holds for code no test runs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.store.keys import ROOTS

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"
STORE = WORKER / "store"
DEFAULT_PREFIXES = {"leadroute", "{leadroute}"}
KEY_LIKE = re.compile(r"^[^\s:]+(:[^\s:]*)+$")  # colon-separated parts, no spaces: a key, not prose


def outside_the_store() -> list[Path]:
    return sorted(p for p in WORKER.rglob("*.py") if STORE not in p.parents)


def _name(node: ast.AST) -> str:
    """The last name of an expression: ``store`` for ``rt.store``, ``prefix`` for ``self.prefix``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_store(node: ast.AST) -> bool:
    name = _name(node).lower()
    return name.endswith("store") or name == "pending"


def _template(node: ast.Constant | ast.JoinedStr) -> tuple[str, list[ast.expr]]:
    """A string literal as text with ``{}`` for each interpolated value, and those values."""
    if isinstance(node, ast.Constant):
        return str(node.value), []
    text, values = "", []
    for part in node.values:
        if isinstance(part, ast.Constant):
            text += str(part.value)
        elif isinstance(part, ast.FormattedValue):
            text += "{}"
            values.append(part.value)
    return text, values


def _key_layout(node: ast.Constant | ast.JoinedStr) -> bool:
    text, values = _template(node)
    if "redis.call(" in text:
        return True
    if not KEY_LIKE.match(text):
        return False
    first = text.split(":", 1)[0]
    if first == "{}" and values:
        return _name(values[0]) == "prefix"
    return first in ROOTS or first in DEFAULT_PREFIXES


def violations(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) for each way ``source`` touches Redis keys itself."""
    tree = ast.parse(source)
    in_fstring: set[int] = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Attribute) and node.value.attr == "client" and _is_store(node.value.value):
                yield node.lineno, f"reaches through a store to Redis: .client.{node.attr}"
            elif node.attr in ("key", "keys") and _is_store(node.value):
                yield node.lineno, f"builds a key from a store: .{node.attr}"
            elif node.attr == "register_script":
                yield node.lineno, "registers a Lua script"
        elif isinstance(node, ast.JoinedStr) and _key_layout(node):
            yield node.lineno, f"spells a key layout or a script: {ast.unparse(node)[:60]}"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in in_fstring
            and _key_layout(node)
        ):
            yield node.lineno, f"spells a key layout or a script: {node.value[:60]!r}"


def test_only_the_store_touches_redis_keys() -> None:
    modules = outside_the_store()
    assert len(modules) > 20 and WORKER / "steps" / "sla_sweep.py" in modules
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in modules
        for line, what in sorted(violations(path.read_text(encoding="utf-8")))
    ]
    assert found == [], "only worker/store/ may touch Redis keys; give the store a method instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "rt.store.client.set(name, '1')",
        "self.store.client.pipeline(transaction=False)",
        "rt.pending.client.zrange(name, 0, -1)",
        "store.key('polled', crm)",
        "rt.store.keys.written(key)",
        "f'{self.prefix}:pending:{crm}'",
        "f'{store.prefix}:open:{crm}'",
        "'leadroute:loads'",
        "f'{{leadroute}}:lock:{name}'",
        "'timers:payload'",
        "f'sla:rep:{rep}'",
        "client.register_script(SCRIPT)",
        "SCRIPT = \"return redis.call('GET', KEYS[1])\"",
    ],
)
def test_each_way_of_touching_keys_is_caught(source: str) -> None:
    assert list(violations(source)), source


@pytest.mark.parametrize(
    "source",
    [
        "store.mark_polled(crm)",
        "create_connector(crm, settings, **rt.store.for_connectors())",
        "self.client.chat_postMessage(channel=c, text=t)",  # a Slack client, not a store's
        "f'queue:{name}'",  # an owner, not a key
        "store.acquire_lock(f'poll:{crm}', ttl=300)",  # a lock name; the store makes the key
        "f'{TIMER_PREFIX}:{lead.crm}:{lead.object}:{lead.lead_id}'",  # a timer id, a member of a key
        "'leadroute: route CRM leads to the right rep'",
        "\"the config has no 'sla:' section\"",
        "f'{record.timer_id}#{record.epoch}:{kind}:{step}:{role}'",
    ],
)
def test_what_is_not_touching_keys_passes(source: str) -> None:
    assert list(violations(source)) == [], source
