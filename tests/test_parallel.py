"""Worker pools never ask for more processes than there are cores."""

import os

from cxrssl.parallel import available_cores, process_pool, worker_count


def test_workers_are_capped_at_the_available_cores(capsys):
    cores = available_cores()
    assert cores == len(os.sched_getaffinity(0))
    assert worker_count(0) == cores and worker_count(1) == 1 and worker_count(64) == cores
    with process_pool(cores + 5) as pool:
        assert pool._processes == cores
    assert f"{cores + 5} workers asked for, {cores} cores available: using {cores}" in capsys.readouterr().err
