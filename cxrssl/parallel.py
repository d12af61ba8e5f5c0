"""Process pools that are safe after OpenCV or PyTorch have started threads.

Forking a process whose OpenCV or OpenMP thread pool is already running can
deadlock the children; "forkserver" forks from a clean server process instead.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(requested: int) -> int:
    """``requested`` processes, at most one per available core; one per core when it is 0.

    More processes than cores only take turns: 64 workers on 2 cores ran 100
    times slower than 2.
    """
    cores = available_cores()
    return min(requested, cores) if requested else cores


def process_pool(workers: int, initializer: Callable | None = None, initargs: tuple = ()):
    """A ``multiprocessing.Pool`` of ``worker_count(workers)`` processes, started safely."""
    count = worker_count(workers)
    if workers > count:
        print(f"note: {workers} workers asked for, {count} cores available: using {count}", file=sys.stderr)
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    return mp.get_context(method).Pool(count, initializer=initializer, initargs=initargs)
