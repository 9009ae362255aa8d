"""``spinlearn fit mtj FILE.csv``: the MTJ model fitted to measured I-V sweeps, into a device profile.

The file is an I-V table (:mod:`.iv_table`: columns ``device``, ``current_a``, ``voltage_v``,
optional ``repeat``); the fit is the one of ``spinlearn calibrate``
(:func:`~.calibration.fit_sweep`: least squares per device, standard errors from the Jacobian,
read noise from the spread of the repeats), and so is the profile: with
``--set device.profile=PROFILE`` the simulated backend uses the fitted devices exactly as it uses a
calibrated profile's. Devices become neuron/twin pairs in file order (channels 1, 2, 3, ...); with
an odd number of devices the last is fitted and reported but left out of the profile.

The profile's limits are the measured range: ``max_current_a`` is the largest measured ``|I|`` (the
model is not validated beyond it, so AFD's calibration sweep stays inside it), and the voltage
limits rise to the largest measured ``|V|`` where that exceeds the defaults.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spinlearn import __version__
from spinlearn.errors import DataError
from spinlearn.hardware.calibration import DeviceFit, fit_sweep, iv_plot, nominal_of
from spinlearn.hardware.iv_table import read_sweep
from spinlearn.hardware.profile import DeviceLimits, DeviceProfile
from spinlearn.hardware.scpi import MAX_CURRENT_A, MAX_VOLTAGE_V
from spinlearn.io import write_text_atomic

#: Relative standard error above which a fitted parameter is reported as poorly constrained.
LOOSE = 0.1


@dataclass
class FileFit:
    """What ``fit mtj`` found: the profile written, every device's fit, and the warnings."""

    profile: DeviceProfile
    names: list[str]
    fits: list[DeviceFit]
    record: dict[str, Any]
    warnings: list[str]


def identifiability(name: str, fit: DeviceFit) -> list[str]:
    """Warnings on what the sweep of device ``name`` could not pin down."""
    q = fit.quality
    out = []
    if not q["converged"]:
        out.append(f"device {name!r}: the fit did not converge")
    if not q["v_half_identified"]:
        out.append(
            f"device {name!r}: V_h not identified (relative error {q['rel_err_v_half']:.2g}): the sweep "
            "stays far below it, so the value only means 'larger than the sweep'"
        )
    for key, label in (("rel_err_r_p", "R_P"), ("rel_err_tmr0", "TMR0"), ("rel_err_is", "I_s")):
        if q[key] > LOOSE:
            out.append(f"device {name!r}: {label} poorly constrained (relative error {q[key]:.2g})")
    return out


def _limits(sweep) -> dict[str, float]:
    """The measured range as the profile's limits (see the module's docstring)."""
    top_i = float(np.nanmax(np.abs(sweep.current_a)))
    top_v = float(np.nanmax(np.abs(np.where(np.isfinite(sweep.current_a), sweep.mean_v, 0.0))))
    limits = {"max_current_a": min(top_i, MAX_CURRENT_A)}
    if top_v > DeviceLimits().compliance_v:
        limits["max_voltage_v"] = limits["compliance_v"] = min(top_v, MAX_VOLTAGE_V)
    return limits


def fit_file(
    path: str | Path,
    out: str | Path,
    *,
    plot: str | Path | None = None,
    progress: Callable[[int], Callable[[], None]] = lambda n: lambda: None,
) -> FileFit:
    """Fit every device of the I-V table ``path``; write the profile to ``out`` (and the plot).

    ``progress(n)`` is called once the file is read, with the number of devices, and returns what
    to call after each device's fit. Raises :class:`DataError` (one line) for a file that is
    malformed or holds fewer than two devices.
    """
    names, sweep = read_sweep(path)
    if len(names) < 2:
        raise DataError(f"{path}: one device ({names[0]!r}): a profile pairs devices as neuron and twin")
    fits = fit_sweep(sweep, progress(len(names)))
    for name, fit in zip(names, fits, strict=True):
        fit.quality["device"] = name
    warnings = [w for name, fit in zip(names, fits, strict=True) for w in identifiability(name, fit)]
    used = len(fits) // 2 * 2
    if used < len(fits):
        warnings.append(
            f"{len(fits)} devices: the last, {names[-1]!r}, has no twin and is left out of the profile"
        )
    record = {
        "file": str(path),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "devices": len(names),
        "repeats": sweep.repeats,
        "median_rms_residual_v": float(np.median([f.quality["rms_residual_v"] for f in fits])),
        "v_half_identified": sum(f.quality["v_half_identified"] for f in fits),
        "spinlearn_version": __version__,
    }
    base = DeviceProfile.from_dict({"pairs": used // 2, "limits": _limits(sweep)}, str(path))
    kept = fits[:used]
    profile = base.with_fits([f.params for f in kept], [f.quality for f in kept], nominal_of(kept), record)
    write_text_atomic(out, profile.to_yaml())
    if plot is not None:
        iv_plot(sweep, fits, Path(plot), f"I-V table {Path(path).name}", names)
    return FileFit(dataclasses.replace(profile, source=str(out)), names, fits, record, warnings)


#: The report's columns: header, width, and the cell of one fit (parameters ``p``, quality ``q``).
_COLUMNS = (
    ("R_P ohm", 10, lambda p, q: f"{p.r_p_ohm:.1f}"),
    ("TMR0", 8, lambda p, q: f"{p.tmr0:.3f}"),
    ("I0 uA", 9, lambda p, q: f"{p.i0_a * 1e6:.2f}"),
    ("Is uA", 8, lambda p, q: f"{p.is_a * 1e6:.2f}"),
    ("V_h V", 8, lambda p, q: f"{p.v_half_v:.3g}" if q["v_half_identified"] else "n.i."),
    ("noise mV", 10, lambda p, q: f"{q['read_noise_v'] * 1e3:.3g}"),
    ("rms mV", 8, lambda p, q: f"{q['rms_residual_v'] * 1e3:.3f}"),
)


def report(result: FileFit) -> list[str]:
    """Per device its fit, read noise and rms residual; the median device; the warnings."""
    width = max(len(n) for n in [*result.names, "device"]) + 2
    rows = [["device".ljust(width)] + [head.rjust(w) for head, w, _ in _COLUMNS]]
    for name, fit in zip(result.names, result.fits, strict=True):
        rows.append([name.ljust(width)] + [cell(fit.params, fit.quality).rjust(w) for _, w, cell in _COLUMNS])
    n = result.profile.nominal
    median = (
        f"median device: R_P {n.r_p_ohm:.1f} ohm, TMR0 {n.tmr0:.3f}, I0 {n.i0_a * 1e6:.2f} uA, "
        f"Is {n.is_a * 1e6:.2f} uA, V_h {n.v_half_v:.3g} V, read noise {n.read_noise_v * 1e3:.3g} mV; "
        f"V_h identified on {result.record['v_half_identified']} of {len(result.fits)} (n.i.: not identified)"
    )
    return ["".join(r) for r in rows] + [median] + [f"warning: {w}" for w in result.warnings]
