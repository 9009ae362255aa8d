"""``sweep_vs_serial``: wall time of the same points x seeds run one after another / as a sweep.

The case is the one a user types: ``spinlearn sweep iris-afd --grid
device.variability=0,0.05,0.1,0.15,0.2,0.3 --seeds 10`` against the six ``spinlearn run iris-afd
--set device.variability=V --seeds 10`` in turn (here in one process, through
:func:`spinlearn.runner.run_experiment`, so no process start-up is counted against the serial side).
The sweep's time includes starting and stopping its private Ray instance. ``ratio`` is serial /
sweep: above 1 the sweep is faster. Every point's mean metrics are checked equal on both sides.
Runs are minutes long, so each side is timed once, not in alternating rounds.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from spinlearn import config
from spinlearn.experiments import get
from spinlearn.runner import run_experiment
from spinlearn.sweep import sweep, usable_cpus

VARIABILITY = (0, 0.05, 0.1, 0.15, 0.2, 0.3)


def run(
    experiment: str = "iris-afd",
    values: tuple[float, ...] = VARIABILITY,
    seeds: int = 10,
    overrides: dict | None = None,
    out: str | None = None,
) -> dict:
    """``out``: keep both sides' run directories there (the sweep's table and plots in OUT/sweep)."""
    exp = get(experiment)
    overrides = dict(overrides or {})
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as scratch:
        tmp = out or scratch
        start = time.perf_counter()
        rows = sweep(
            experiment,
            {"device.variability": list(values)},
            seeds=seeds,
            overrides=overrides,
            out=Path(tmp) / "sweep",
            quiet=True,
        )
        sweep_s = time.perf_counter() - start
        start = time.perf_counter()
        serial = []
        for value in values:
            cfg = config.build(
                exp.config_cls, exp.default_config(), None, {**overrides, "device.variability": value}
            )
            summary = run_experiment(exp, cfg, Path(tmp) / f"serial{value}", 0, seeds, quiet=True)
            serial.append(summary["metrics"])
        serial_s = time.perf_counter() - start
    metric = "test_accuracy"
    return {
        "benchmark": "sweep_vs_serial",
        "ratio": serial_s / sweep_s,
        "sweep_s": sweep_s,
        "serial_s": serial_s,
        "metrics_equal": all(
            row[f"{metric}_mean"] == m[f"{metric}_mean"] for row, m in zip(rows, serial, strict=True)
        ),
        "experiment": experiment,
        "points": len(values),
        "seeds": seeds,
        "overrides": overrides,
        "cpus": usable_cpus(),
        "threads_serial": torch.get_num_threads(),
    }
