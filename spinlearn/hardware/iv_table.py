"""The I-V table: measured MTJ sweeps as a CSV file, the second source of a :class:`~.calibration.Sweep`.

An instrument sweep (``spinlearn calibrate``) and a file (``spinlearn fit mtj``) are two sources of
the same table, fitted by the same code. Columns (SI units, one row per reading)::

    device      name of the device (any text); devices keep the order of their first row
    current_a   bias current (A)
    voltage_v   measured voltage (V)
    repeat      optional: number of the sweep the reading belongs to (0, 1, ...)

Readings of one device at the same current are averaged; their sample standard deviation is the
read noise. Within one device and repeat the currents must run one way (a sweep, strictly
increasing or decreasing): a file whose currents go back and forth holds several sweeps and needs
a ``repeat`` column. ``calibrate`` writes its sweep in this layout, one row per point with the mean
voltage, plus ``spread_v`` (sample standard deviation of the repeats), ``repeats`` and
``compliance`` (1: a repeat was clamped; left out of the fit); read back, these give the same fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinlearn.csv_table import read_csv_table, write_csv_table
from spinlearn.errors import DataError

COLUMNS = ("device", "current_a", "voltage_v")
OPTIONAL = ("repeat", "spread_v", "repeats", "compliance")
MIN_FIT_POINTS = 8  # distinct currents per device: the MTJ model has five parameters


@dataclass
class Sweep:
    """An I-V sweep of every device: arrays of shape ``(devices, points)``.

    Devices swept on different grids leave their unused points NaN in ``current_a``.
    """

    current_a: np.ndarray
    mean_v: np.ndarray
    std_v: np.ndarray  # sample standard deviation over the repeats (0 for one repeat, NaN: unknown)
    clamped: np.ndarray  # a repeat of this point was in compliance
    repeats: int  # readings behind every mean (the fewest, where points differ)

    def usable(self, d: int) -> np.ndarray:
        """Mask of device ``d``'s points that were measured and are out of compliance."""
        return np.isfinite(self.current_a[d]) & ~self.clamped[d]


def write_sweep(path: str | Path, names: list[str], sweep: Sweep) -> Path:
    """``sweep`` as an I-V table, one row per point that was measured, device by device."""
    rows: dict[str, list] = {c: [] for c in (*COLUMNS, "spread_v", "repeats", "compliance")}
    for d, name in enumerate(names):
        for k in np.flatnonzero(np.isfinite(sweep.current_a[d])):
            rows["device"].append(name)
            rows["current_a"].append(float(sweep.current_a[d, k]))
            rows["voltage_v"].append(float(sweep.mean_v[d, k]))
            rows["spread_v"].append(float(sweep.std_v[d, k]))
            rows["repeats"].append(sweep.repeats)
            rows["compliance"].append(int(sweep.clamped[d, k]))
    return write_csv_table(path, rows)


def _check_monotone(path: Path, name: str, repeat: float | None, current: np.ndarray) -> None:
    step = np.diff(current)
    if current.size > 1 and not (np.all(step > 0) or np.all(step < 0)):
        where = f"device {name!r}" + (f", repeat {repeat:g}" if repeat is not None else "")
        hint = "" if repeat is not None else " (several sweeps? number them in a `repeat` column)"
        raise DataError(f"{path}: {where}: the currents do not run one way, not a sweep{hint}")


def read_sweep(path: str | Path) -> tuple[list[str], Sweep]:
    """The device names and the sweep of the I-V table ``path``; one-line :class:`DataError` if bad.

    Devices may have different grids: a device's unused points are NaN (left out by the fit).
    """
    path = Path(path)
    t = read_csv_table(path, COLUMNS, OPTIONAL)
    names = list(dict.fromkeys(t["device"].tolist()))
    per_device = []
    for name in names:
        rows = t["device"] == name
        current, volts = t["current_a"][rows], t["voltage_v"][rows]
        repeat = t["repeat"][rows] if "repeat" in t else None
        for r in np.unique(repeat) if repeat is not None else [None]:
            _check_monotone(path, name, r, current if r is None else current[repeat == r])
        grid, which, count = np.unique(current, return_inverse=True, return_counts=True)
        if grid.size < MIN_FIT_POINTS:
            raise DataError(
                f"{path}: device {name!r} has {grid.size} distinct current(s): the fit needs at least "
                f"{MIN_FIT_POINTS}"
            )
        mean = np.bincount(which, volts) / count
        spread = np.sqrt(np.bincount(which, (volts - mean[which]) ** 2) / np.maximum(count - 1, 1))
        spread[count < 2] = np.nan
        repeats = count
        if "spread_v" in t and np.all(count == 1):  # a table of means, as calibrate writes it
            spread = t["spread_v"][rows][np.argsort(current)]
            repeats = t["repeats"][rows].astype(int) if "repeats" in t else np.ones(grid.size, int)
        clamped = np.zeros(grid.size, bool)
        if "compliance" in t:
            clamped = np.bincount(which, t["compliance"][rows] != 0, minlength=grid.size) > 0
        per_device.append((grid, mean, spread, clamped, int(repeats.min())))
    width = max(p[0].size for p in per_device)

    def padded(k: int, fill, dtype) -> np.ndarray:
        out = np.full((len(names), width), fill, dtype=dtype)
        for d, p in enumerate(per_device):
            out[d, : p[k].size] = p[k]
        return out

    repeats = min(p[4] for p in per_device)
    sweep = Sweep(
        padded(0, np.nan, float),
        padded(1, np.nan, float),
        padded(2, np.nan, float),
        padded(3, False, bool),
        repeats,
    )
    return names, sweep
