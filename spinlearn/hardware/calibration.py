r"""Calibration: an I-V sweep of every device through the instrument, and a fit of the MTJ model.

``spinlearn calibrate --resource RES --out profile.yaml [--profile limits.yaml]``:

1. **Sweep.** Every device of the profile is biased at ``points`` currents over :math:`\pm` its
   ``max_current_a``, sinh-spaced (``GRID_STRETCH``: densest around zero, where the free layer
   switches), ``repeats`` times, in list sweeps that interleave the devices.
   The safety checks of :class:`~.bench.Bench` apply (nothing beyond the limits is written);
   readings in compliance come back flagged and are left out of the fit.
2. **Fit.** The mean voltage per point is fitted per device with
   :func:`spinlearn.devices.mtj.voltage` by ``scipy.optimize.least_squares`` over
   :math:`(\ln R_P, \ln \mathrm{TMR}_0, I_0 / I_{max}, \ln (I_s / I_{max}), \ln V_h)`. The
   standard errors come from the Jacobian at the optimum; :math:`V_h` counts as identified when its
   relative error is below ``V_HALF_IDENTIFIED`` (a sweep that stays far below :math:`V_h` cannot
   tell it apart from infinity, and the fitted value then only means "larger than the sweep").
3. **Read noise** is the rms spread of the repeats (model-free), per device.
4. **Profile.** The input profile with a ``fit`` and a ``fit_quality`` per device, the medians as
   ``nominal`` and the sweep's record as ``calibration``; the measured sweep itself goes beside it
   as an I-V table (``PROFILE.sweep.csv``, :mod:`.iv_table`), which ``spinlearn fit mtj`` refits.
   With ``--set device.profile=FILE`` the simulated backend uses these fitted devices (the
   sim-to-real loop), and ``--backend visa`` the fits' predicted voltages as an extra safety check.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spinlearn import __version__
from spinlearn.devices import mtj
from spinlearn.devices.mtj import MTJParams
from spinlearn.errors import ConfigError
from spinlearn.hardware.bench import Bench
from spinlearn.hardware.iv_table import MIN_FIT_POINTS, Sweep, write_sweep
from spinlearn.hardware.profile import DeviceProfile
from spinlearn.hardware.sourcemeter import SourceMeter
from spinlearn.io import save_figure_atomic, write_text_atomic

V_HALF_IDENTIFIED = 0.25  # relative standard error of V_h below which it counts as measured
PLOT_PAIRS = 4
GRID_STRETCH = 2.5  # sinh spacing: the grid step at zero is ~ 2.5 / sinh(2.5) = 0.41 x the uniform one


@dataclass
class DeviceFit:
    params: MTJParams
    quality: dict[str, Any]


def iv_sweep(bench: Bench, points: int, repeats: int, progress: Callable[[], None] = lambda: None) -> Sweep:
    """Sweep every device of ``bench`` over +/- its ``max_current_a``, ``points`` currents ``repeats`` times.

    The grid is sinh-spaced: dense around zero, where the free layer switches (I_0, I_s live there).
    ``progress`` is called after each repeat.
    """
    n = len(bench.channels)
    unit = np.sinh(GRID_STRETCH * np.linspace(-1.0, 1.0, points)) / math.sinh(GRID_STRETCH)
    # (devices, points); the margin keeps the 8-digit written value inside the limit
    grid = bench.max_current[:, None] * (1.0 - 1e-7) * unit[None, :]
    index = np.broadcast_to(np.arange(n)[None, :], (points, n)).ravel()  # point-major: devices interleave
    current = grid.T.ravel()
    readings = np.empty((repeats, n, points))
    clamped = np.zeros((n, points), dtype=bool)
    for r in range(repeats):
        v, c = bench.measure(index, current)
        readings[r] = v.reshape(points, n).T
        clamped |= c.reshape(points, n).T
        progress()
    std = readings.std(0, ddof=1) if repeats > 1 else np.zeros((n, points))
    return Sweep(grid, readings.mean(0), std, clamped, repeats)


def _initial_guess(i: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Start values from the shape of R = V / I: R_P on the positive side, R_AP on the negative."""
    big = np.abs(i) > 0.3 * scale
    r = v[big] / i[big]
    pos, neg = r[i[big] > 0], r[i[big] < 0]
    r_p = float(np.median(pos)) if pos.size else float(np.median(np.abs(r)))
    r_ap = float(np.max(neg)) if neg.size else 2 * r_p
    r_p = max(r_p, 1.0)
    tmr0 = min(max(r_ap / r_p - 1.0, 0.05), 9.0)
    return np.array([math.log(r_p), math.log(tmr0), 0.0, math.log(0.1), math.log(0.5)])


def _unpack(x: np.ndarray, scale: float) -> MTJParams:
    return MTJParams(
        r_p_ohm=math.exp(x[0]),
        tmr0=math.exp(x[1]),
        i0_a=x[2] * scale,
        is_a=math.exp(x[3]) * scale,
        v_half_v=math.exp(x[4]),
    )


def fit_device(i: np.ndarray, v: np.ndarray, scale: float) -> tuple[MTJParams, dict[str, Any]]:
    """Least-squares fit of :func:`mtj.voltage` to the points ``(i, v)``; ``scale``: the sweep's |I| (A)."""
    from scipy.optimize import least_squares

    if i.size < MIN_FIT_POINTS:
        raise ConfigError(f"only {i.size} points out of compliance: too few to fit (lower compliance_v?)")
    current = torch.from_numpy(i)[:, None]

    def residual(x: np.ndarray) -> np.ndarray:
        pop = mtj.MTJPopulation(
            *(
                torch.tensor([value], dtype=torch.float64)
                for value in (
                    math.exp(x[0]),
                    math.exp(x[1]),
                    math.exp(x[4]),
                    x[2] * scale,
                    math.exp(x[3]) * scale,
                )
            )
        )
        return mtj.voltage(current, pop)[:, 0].numpy() - v

    lo = np.array([0.0, math.log(1e-3), -1.0, math.log(1e-4), math.log(1e-3)])
    hi = np.array([math.log(1e9), math.log(10.0), 1.0, math.log(min(10.0, 1.0 / scale)), math.log(1e6)])
    x0 = np.clip(_initial_guess(i, v, scale), lo + 1e-9, hi - 1e-9)
    result = least_squares(residual, x0, bounds=(lo, hi), x_scale=1.0, max_nfev=2000)
    dof = max(i.size - x0.size, 1)
    s2 = 2.0 * result.cost / dof
    jac = result.jac
    cov = np.linalg.pinv(jac.T @ jac) * s2
    err = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    at_bound = result.active_mask != 0
    identified = bool(err[4] < V_HALF_IDENTIFIED and not at_bound[4])
    quality = {
        "rms_residual_v": float(np.sqrt(np.mean(result.fun**2))),
        "points": int(i.size),
        "rel_err_r_p": float(err[0]),
        "rel_err_tmr0": float(err[1]),
        "err_i0_a": float(err[2] * scale),
        "rel_err_is": float(err[3]),
        "rel_err_v_half": float(err[4]),
        "v_half_identified": identified,
        "converged": bool(result.success),
    }
    return _unpack(result.x, scale), quality


def fit_sweep(sweep: Sweep, progress: Callable[[], None] = lambda: None) -> list[DeviceFit]:
    """One fit per device of ``sweep``; its read noise from the spread of the repeats.

    ``progress`` is called after each device."""
    fits = []
    for d in range(sweep.current_a.shape[0]):
        ok = sweep.usable(d)
        i, v = sweep.current_a[d, ok], sweep.mean_v[d, ok]
        params, quality = fit_device(i, v, float(np.nanmax(np.abs(sweep.current_a[d]))))
        spread = sweep.std_v[d, ok]
        spread = spread[np.isfinite(spread)]
        if sweep.repeats > 1 and spread.size:
            noise = float(np.sqrt(np.mean(spread**2)))
        else:
            noise = quality["rms_residual_v"]
        quality["read_noise_v"] = noise
        quality["points_in_compliance"] = int((sweep.clamped[d] & np.isfinite(sweep.current_a[d])).sum())
        fits.append(DeviceFit(dataclasses.replace(params, read_noise_v=min(noise, 1.0)), quality))
        progress()
    return fits


def nominal_of(fits: list[DeviceFit]) -> MTJParams:
    """The median device; V_h from the devices where it was identified (all, if none)."""
    names = [f.name for f in dataclasses.fields(MTJParams)]
    values = {n: float(np.median([getattr(f.params, n) for f in fits])) for n in names}
    identified = [f.params.v_half_v for f in fits if f.quality["v_half_identified"]]
    if identified:
        values["v_half_v"] = float(np.median(identified))
    return MTJParams(**values)


def iv_plot(
    sweep: Sweep, fits: list[DeviceFit], path: Path, title: str = "", names: list[str] | None = None
) -> Path:
    """Measured I-V points with their fits (first pairs), and the residuals of every device.

    ``names`` label the devices (default: pair and role)."""
    from spinlearn.plots import _pyplot

    plt = _pyplot()
    fig, (ax_iv, ax_res) = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for d in range(min(2 * PLOT_PAIRS, len(fits))):
        color = colors[(d // 2) % len(colors)]
        i = sweep.current_a[d]
        dense = torch.linspace(float(np.nanmin(i)), float(np.nanmax(i)), 200, dtype=torch.float64)
        p = fits[d].params
        pop = mtj.nominal_population(p, 1, dtype=torch.float64)
        model = mtj.voltage(dense[:, None], pop)[:, 0].numpy()
        label = names[d] if names else f"pair {d // 2} {'twin' if d % 2 else 'neuron'}"
        ok = sweep.usable(d)
        ax_iv.plot(i[ok] * 1e3, sweep.mean_v[d, ok], "o" if d % 2 == 0 else "x", ms=3, color=color)
        ax_iv.plot(dense * 1e3, model, "-" if d % 2 == 0 else "--", lw=1, color=color, label=label)
    ax_iv.set_xlabel("current (mA)")
    ax_iv.set_ylabel("voltage (V)")
    ax_iv.set_title("I-V: points measured, lines fitted")
    ax_iv.legend(fontsize=6, ncol=2)
    for d, fit in enumerate(fits):
        ok = sweep.usable(d)
        pop = mtj.nominal_population(fit.params, 1, dtype=torch.float64)
        i = torch.from_numpy(sweep.current_a[d, ok])[:, None]
        res = sweep.mean_v[d, ok] - mtj.voltage(i, pop)[:, 0].numpy()
        ax_res.plot(sweep.current_a[d, ok] * 1e3, res * 1e3, ".", ms=2, color=colors[(d // 2) % len(colors)])
    ax_res.axhline(0.0, color="k", lw=0.5)
    rms = np.median([f.quality["rms_residual_v"] for f in fits])
    ax_res.set_xlabel("current (mA)")
    ax_res.set_ylabel("residual (mV)")
    ax_res.set_title(f"residuals, {len(fits)} devices (median rms {rms * 1e3:.3g} mV)")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)
    return path


def sweep_path(profile_path: Path) -> Path:
    """Where ``calibrate`` keeps the measured sweep of the profile ``profile_path``: beside it, as an
    I-V table (:mod:`.iv_table`) that ``spinlearn fit mtj`` fits again."""
    return profile_path.with_suffix(".sweep.csv")


def calibrate(
    resource: str,
    limits: DeviceProfile,
    out: str | Path,
    *,
    plot: str | Path | None = None,
    points: int = 61,
    repeats: int = 4,
    visa_library: str = "@py",
    progress: Callable[[], None] = lambda: None,
) -> tuple[DeviceProfile, list[DeviceFit], dict[str, Any]]:
    """Sweep and fit every device of ``limits`` on ``resource``; write the fitted profile to ``out``.

    Returns the new profile, the fits and the calibration record. The instrument's output is off
    when this returns or raises (a SIGTERM included, under the CLI). ``progress`` is called after
    each of the ``repeats`` sweeps.
    """
    if points < MIN_FIT_POINTS:
        raise ConfigError(f"--points = {points}: must be >= {MIN_FIT_POINTS}")
    if not 1 <= repeats <= 1000:
        raise ConfigError(f"--repeats = {repeats}: must be >= 1 and <= 1000")
    base = limits.without_fits()  # the sweep goes to the limits: no old fit may veto it
    meter = SourceMeter.for_profile(resource, base, visa_library)
    bench = Bench(meter, base, allow_compliance=True)
    try:
        sweep = iv_sweep(bench, points, repeats, progress)
    finally:
        bench.close()
    fits = fit_sweep(sweep)
    nominal = nominal_of(fits)
    record = {
        "resource": resource,
        "identity": meter.identity,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "points": points,
        "repeats": repeats,
        "readings": meter.readings,
        "instrument_time_s": round(meter.busy_s, 3),
        "median_rms_residual_v": float(np.median([f.quality["rms_residual_v"] for f in fits])),
        "v_half_identified": sum(f.quality["v_half_identified"] for f in fits),
        "limits_from": limits.source,
        "spinlearn_version": __version__,
    }
    out = Path(out)
    table = sweep_path(out)
    record["sweep_table"] = table.name
    profile = base.with_fits([f.params for f in fits], [f.quality for f in fits], nominal, record)
    write_sweep(table, [f"ch{e.channel}" for e in base.devices], sweep)
    write_text_atomic(out, profile.to_yaml())
    if plot is not None:
        iv_plot(sweep, fits, Path(plot), f"{meter.identity} ({resource})")
    return dataclasses.replace(profile, source=str(out)), fits, record
