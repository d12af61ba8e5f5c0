"""Recorded benchmark results: one machine-readable file, bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from cxrssl.io import write_json

RESULTS = Path(__file__).with_name("results.json")


def machine() -> dict:
    """Where a figure was measured."""
    import torch

    return {
        "cpu_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def record(name: str, result: dict) -> None:
    """Store ``result`` under ``name`` in bench/results.json, with the machine it ran on."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[name] = {**result, "machine": machine()}
    write_json(RESULTS, dict(sorted(results.items())))
