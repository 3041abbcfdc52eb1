"""Race real OS processes against one store: the harness the concurrency tests share.

Each process comes from a fork server (clean even if the test process has threads), waits on a
barrier so the processes really overlap, and hands back its return value or its failure.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from typing import Any


def race(target: Callable[..., Any], procs: int, *args: Any, timeout: float = 150) -> list[Any]:
    """Run ``target(barrier, index, *args)`` in ``procs`` processes; their return values, or the first failure raised."""
    ctx = mp.get_context("forkserver")  # clean children even if the test process has threads
    ctx.set_forkserver_preload([target.__module__])
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    workers = [ctx.Process(target=_run, args=(results, target, barrier, i, *args)) for i in range(procs)]
    for w in workers:
        w.start()
    out = [results.get(timeout=timeout) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    failures = [r for r in out if isinstance(r, BaseException)]
    if failures:
        raise failures[0]
    return out


def _run(results: Any, target: Callable[..., Any], barrier: Any, index: int, *args: Any) -> None:
    try:
        results.put(target(barrier, index, *args))
    except BaseException as exc:  # hand the failure back to the test
        results.put(RuntimeError(f"process {index}: {exc!r}"))
