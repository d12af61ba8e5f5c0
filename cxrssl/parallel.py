"""Process pools that are safe after OpenCV or PyTorch have started threads.

Forking a process whose OpenCV or OpenMP thread pool is already running can
deadlock the children; "forkserver" forks from a clean server process instead.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable


def worker_count(requested: int) -> int:
    """``requested`` processes, or one per core when it is 0."""
    return requested or os.cpu_count() or 1


def process_pool(workers: int, initializer: Callable | None = None, initargs: tuple = ()):
    """A ``multiprocessing.Pool`` of ``worker_count(workers)`` processes, started safely."""
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    return mp.get_context(method).Pool(worker_count(workers), initializer=initializer, initargs=initargs)
