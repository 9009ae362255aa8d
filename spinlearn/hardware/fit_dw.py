r"""``spinlearn fit dw FILE.csv``: the domain-wall model fitted to measured pulse responses.

The file holds one row per programming pulse (SI units)::

    device      name of the device (any text)
    pulse_a     pulse current (A), signed: the sign is the polarity (+: towards G_max)
    pulse_s     pulse width (s)
    g_before_s  conductance read before the pulse (S)
    g_after_s   conductance read after it (S)

The fit inverts the model of :mod:`spinlearn.devices.domain_wall` (linear response; positions in
track fractions :math:`u = x / L`, ``L`` the model's ``track_length_m``, which conductance alone
cannot measure), per device:

1. **Conductance range**: :math:`G_{min}` and :math:`G_{max}` are the smallest and largest
   conductance read: walls reset to an end and pushed further show them. With read noise (step 3)
   they are the medians of the reads near those extremes instead, and the fit is repeated.
2. **Drift**: pulses whose wall starts in the middle half of the track, far from the ends, are
   grouped by amplitude and width; the groups' mean steps along the polarity are fitted by least
   squares (weighted by their standard errors) with :math:`\bar{u} = (v_0/L)\,t\,(|I|/I_{th}-1)_+`:
   the slope gives ``velocity_m_per_s``, the kink ``threshold_a``. Two amplitudes above the
   threshold are needed to tell them apart; pulses below it (no motion) pin the kink.
3. **Diffusion**: above the threshold a step's variance is :math:`2 (D/L^2) t` plus twice the read
   noise's (two reads); below it, twice the read noise's alone, which gives ``read_noise``.
4. **Edge shrink**: pulses that start within a quarter track of the end they push towards are fitted
   for :math:`\lambda` (``edge_length_m``, one-dimensional least squares) with the model's mean
   step there, :math:`E[\Delta u] = E[X;X<0] + f\,E[X;0<X<k] + r\,P(X>k)`,
   :math:`X \sim N(\bar u, \sigma^2)` the free step, ``r`` the room left, :math:`f = \min(1, r/\ell)`,
   :math:`k = \max(r, \ell)` (the step shrinks, and the wall stops at the end).

The profile (:mod:`.dw_profile`) holds every device's fit and their median; the devices' spread of
:math:`v_0` and :math:`D` beyond the fits' own standard errors is the model's ``variability``
(estimated from three devices on).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spinlearn import __version__
from spinlearn.csv_table import read_csv_table
from spinlearn.devices.domain_wall import DWParams
from spinlearn.errors import DataError
from spinlearn.hardware.dw_profile import DWProfile
from spinlearn.io import write_text_atomic

COLUMNS = ("device", "pulse_a", "pulse_s", "g_before_s", "g_after_s")
INTERIOR = 0.25  # a wall starting this far (track fraction) from both ends feels no edge
MIN_GROUP = 2  # pulses per amplitude and width for a variance
END_CLUSTER = 4.0  # read-noise rms: the reads of walls at an end, around the conductance limit
EDGE_BINS = np.linspace(0.0, 4.0, 17)  # room left / lambda, for the plot
#: The fitted parameters, under the model's own names.
FITTED = ("threshold_a", "velocity_m_per_s", "diffusion_m2_per_s", "g_min_s", "g_max_s", "edge_length_m")


@dataclass
class _Groups:
    """Interior pulses of one device grouped by (amplitude, width): counts, mean and variance of the
    step along the polarity (track fractions)."""

    amp: np.ndarray
    width: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray


@dataclass
class DWDeviceFit:
    """One device's fitted parameters (``FITTED`` names, SI units), fit quality and warnings."""

    name: str
    length_m: float  # the track length the fractions were turned into metres with
    params: dict[str, float]
    quality: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    groups: _Groups | None = None  # for the plot
    edge: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (room, predicted free mean, step)


def _groups(amp: np.ndarray, width: np.ndarray, step: np.ndarray) -> _Groups:
    keys, which, n = np.unique(np.stack([amp, width], 1), axis=0, return_inverse=True, return_counts=True)
    which = which.ravel()
    mean = np.bincount(which, step) / n
    var = np.bincount(which, (step - mean[which]) ** 2) / np.maximum(n - 1, 1)
    keep = n >= MIN_GROUP
    return _Groups(keys[keep, 0], keys[keep, 1], n[keep], mean[keep], var[keep])


def _drift_fit(g: _Groups, where: str) -> tuple[float, float, np.ndarray]:
    """(v0/L in 1/s, I_th in A, their relative standard errors) from the groups' mean steps."""
    from scipy.optimize import least_squares

    se = np.sqrt((g.var + 1e-9 * g.var.max() + 1e-300) / g.n)
    moving = g.mean > 3 * se
    if np.unique(g.amp[moving]).size < 2:
        raise DataError(
            f"{where}: pulses move the wall at {np.unique(g.amp[moving]).size} amplitude(s) only: "
            "velocity and threshold need two or more amplitudes above the threshold"
        )
    slope, intercept = np.polyfit(g.amp[moving], (g.mean / g.width)[moving], 1, w=(g.width / se)[moving])
    rate = -intercept if intercept < 0 else float(np.median((g.mean / g.width)[moving]))
    thr = rate / slope if slope > 0 and intercept < 0 else 0.5 * float(g.amp[moving].min())

    def residual(x: np.ndarray) -> np.ndarray:
        model = math.exp(x[0]) * g.width * np.maximum(g.amp / math.exp(x[1]) - 1.0, 0.0)
        return (g.mean - model) / se

    top = float(g.amp.max())
    x0 = np.array([math.log(max(rate, 1e-300)), math.log(min(max(thr, 1e-6 * top), top * 0.999))])
    result = least_squares(residual, x0, bounds=([-np.inf, math.log(1e-6 * top)], [np.inf, math.log(top)]))
    dof = max(g.n.size - 2, 1)
    cov = np.linalg.pinv(result.jac.T @ result.jac) * max(2 * result.cost / dof, 1.0)
    return math.exp(result.x[0]), math.exp(result.x[1]), np.sqrt(np.clip(np.diag(cov), 0, None))


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z)


def edge_mean(room: np.ndarray, mu: np.ndarray, sigma: np.ndarray, edge: float) -> np.ndarray:
    """Mean step (track fractions, along the polarity) of walls with ``room`` left before the end
    they are pushed towards: free step ``N(mu, sigma^2)``, shrunk by ``min(1, room/edge)`` and
    stopped at the end (see the module's docstring)."""
    room = np.maximum(room, 0.0)  # read noise can put a wall at an end past it
    f = np.minimum(1.0, room / edge)
    k = np.maximum(room, edge)
    s = np.maximum(sigma, 1e-300)
    a, b = -mu / s, (k - mu) / s
    below = mu * _cdf(a) - s * _phi(a)  # E[X; X < 0]
    middle = mu * (_cdf(b) - _cdf(a)) + s * (_phi(a) - _phi(b))  # E[X; 0 < X < k]
    return below + f * middle + room * (1.0 - _cdf(b))


def fit_device(name: str, t: dict[str, np.ndarray], length_m: float, where: str) -> DWDeviceFit:
    """Fit one device's rows ``t`` (columns of ``COLUMNS``); ``length_m``: the track length L.

    With read noise the extremes of the reads overshoot the conductance limits, which would also
    make walls at an end look short of it: the limits are then re-estimated as the medians of the
    reads within ``END_CLUSTER`` read-noise rms of each extreme (walls pushed past an end sit there),
    and the device fitted again."""
    reads = np.concatenate([t["g_before_s"], t["g_after_s"]])
    low, high = float(reads.min()), float(reads.max())
    if not high > low:
        raise DataError(f"{where}: the conductance never changes ({low:g} S): no pulse moved the wall")
    fit = _fit_in_range(name, t, length_m, where, low, high)
    noise = fit.quality["read_noise"]
    if noise:
        reach = END_CLUSTER * noise * (high - low)
        low, high = (
            float(np.median(reads[reads <= low + reach])),
            float(np.median(reads[reads >= high - reach])),
        )
        fit = _fit_in_range(name, t, length_m, where, low, high, noise)
    return fit


def _fit_in_range(
    name: str, t: dict[str, np.ndarray], length_m: float, where: str, g_min: float, g_max: float, noise=0.0
) -> DWDeviceFit:
    """The fit with the conductance limits given; ``noise``: the read noise's rms (track fractions),
    within three of which of an end a wall cannot be told from one sitting at it (left out of the edge
    fit)."""
    before, after = t["g_before_s"], t["g_after_s"]
    span = g_max - g_min
    polarity = np.where(t["pulse_a"] < 0, -1.0, 1.0)
    amp, width = np.abs(t["pulse_a"]), t["pulse_s"]
    position = (before - g_min) / span
    room = np.where(polarity > 0, 1.0 - position, position)
    step = polarity * (after - before) / span
    inside = (position >= INTERIOR) & (position <= 1 - INTERIOR)
    g = _groups(amp[inside], width[inside], step[inside])
    if g.n.size == 0:
        raise DataError(
            f"{where}: no amplitude and width with {MIN_GROUP} pulses in the middle half of the track"
        )
    rate, thr, rel_err = _drift_fit(g, where)
    moves = g.amp > thr
    still = ~moves
    read2 = float(np.sum((g.n * g.var / 2)[still]) / np.sum(g.n[still])) if still.any() else 0.0
    excess = np.maximum(g.var[moves] - 2 * read2, 0.0)
    dof = g.n[moves] - 1
    diffusion = float(np.sum(dof * excess / (2 * g.width[moves])) / max(np.sum(dof), 1))
    warnings = []
    if not still.any():
        warnings.append("no pulse below the threshold: threshold extrapolated, read noise not measured")
    fit = DWDeviceFit(name, length_m, {}, {}, warnings, g)
    mu = rate * width * np.maximum(amp / thr - 1.0, 0.0)
    near = (room < INTERIOR) & (amp > thr) & (room > 3 * noise)
    edge = _edge_fit(room[near], mu[near], np.sqrt(2 * diffusion * width[near]), step[near])
    identified = edge is not None
    if identified:
        fit.edge = (room[near], mu[near], step[near])
    else:
        edge = DWParams().edge_length_m / length_m
        warnings.append(
            "edge length not identified (too few pulses near the ends, or a fit at a bound): "
            "model default kept"
        )
    fit.params = {
        "threshold_a": thr,
        "velocity_m_per_s": rate * length_m,
        "diffusion_m2_per_s": max(diffusion, 1e-30) * length_m**2,
        "g_min_s": g_min,
        "g_max_s": g_max,
        "edge_length_m": edge * length_m,
    }
    fit.quality = {
        "pulses": int(step.size),
        "pulses_inside": int(inside.sum()),
        "groups": int(g.n.size),
        "groups_below_threshold": int(still.sum()),
        "rel_err_velocity": float(rel_err[0]),
        "rel_err_threshold": float(rel_err[1]),
        # a sample variance's relative error is sqrt(2 / dof); the read noise's share adds to it
        "rel_err_diffusion": float(
            math.sqrt(2.0 / max(np.sum(dof), 1))
            * np.sum(dof * g.var[moves])
            / max(np.sum(dof * excess), 1e-300)
        ),
        "read_noise": math.sqrt(read2) if still.any() else None,
        "edge_identified": identified,
    }
    return fit


def _edge_fit(room: np.ndarray, mu: np.ndarray, sigma: np.ndarray, step: np.ndarray) -> float | None:
    """Least-squares edge length (track fractions) from pulses that start ``room`` before the end
    they push towards, free steps ``N(mu, sigma^2)``, observed ``step``; None if not identified:
    fewer than five pulses, fewer than three that started within it, or a fit at a bound."""
    from scipy.optimize import minimize_scalar

    if (room > 0).sum() < 5:
        return None

    def cost(log_edge: float) -> float:
        return float(np.sum((step - edge_mean(room, mu, sigma, math.exp(log_edge))) ** 2))

    # the cost has local minima (pulses far above the threshold clamp at the end whatever the edge
    # is): the best of a grid first, then refined between its neighbours
    lo, hi = math.log(1e-4), math.log(INTERIOR)
    grid = np.linspace(lo, hi, 49)
    k = int(np.argmin([cost(x) for x in grid]))
    bounds = (grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)])
    edge = math.exp(minimize_scalar(cost, bounds=bounds, method="bounded").x)
    inside = ((room > 0) & (room < edge)).sum()
    return edge if inside >= 3 and math.exp(lo) * 1.01 < edge < 0.99 * INTERIOR else None


def _variability(fits: list[DWDeviceFit], median: dict[str, float]) -> float | None:
    """Relative spread of v0 and D across devices beyond the fits' own errors (None below 3 devices)."""
    if len(fits) < 3:
        return None
    spread = []
    for key, err in (("velocity_m_per_s", "rel_err_velocity"), ("diffusion_m2_per_s", "rel_err_diffusion")):
        rel = np.array([f.params[key] for f in fits]) / median[key]
        noise = np.mean([f.quality[err] ** 2 for f in fits])
        spread.append(max(float(np.var(rel, ddof=1)) - noise, 0.0))
    return float(min(math.sqrt(np.mean(spread)), 1.0))


@dataclass
class DWFileFit:
    profile: DWProfile
    fits: list[DWDeviceFit]


def fit_file(
    path: str | Path,
    out: str | Path,
    *,
    plot: str | Path | None = None,
    track_length_m: float | None = None,
    progress: Callable[[int], Callable[[], None]] = lambda n: lambda: None,
) -> DWFileFit:
    """Fit every device of the pulse-response table ``path``; write the profile to ``out`` (and the plot).

    ``track_length_m``: the track length L (default: the model's) that turns track fractions into
    metres. ``progress`` as in :func:`.fit_mtj.fit_file`. Raises :class:`DataError` (one line) for a
    malformed file or one the model cannot fit.
    """
    length = track_length_m or DWParams().track_length_m
    t = read_csv_table(path, COLUMNS)
    for col in ("pulse_s", "g_before_s", "g_after_s"):
        if (t[col] <= 0).any():
            raise DataError(f"{path}: {col} must be > 0 (row {int(np.argmax(t[col] <= 0)) + 1})")
    names = list(dict.fromkeys(t["device"].tolist()))
    fits = []
    advance = progress(len(names))
    for name in names:
        rows = t["device"] == name
        fits.append(fit_device(name, {c: v[rows] for c, v in t.items()}, length, f"{path}: device {name!r}"))
        advance()
    nominal = {k: float(np.median([f.params[k] for f in fits])) for k in FITTED}
    edges = [f.params["edge_length_m"] for f in fits if f.quality["edge_identified"]]
    if edges:
        nominal["edge_length_m"] = float(np.median(edges))
    else:
        del nominal["edge_length_m"]
    noise = [f.quality["read_noise"] for f in fits if f.quality["read_noise"] is not None]
    if noise:
        nominal["read_noise"] = float(np.median(noise))
    variability = _variability(fits, nominal)
    if variability is not None:
        nominal["variability"] = variability
    nominal["track_length_m"] = length
    record = {
        "file": str(path),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "devices": len(fits),
        "response": "linear",
        "spinlearn_version": __version__,
    }
    devices = tuple({"device": f.name, "fit": f.params, "fit_quality": f.quality} for f in fits)
    profile = DWProfile(nominal, devices, record, str(out))
    profile.params()  # a fit outside the model's ranges is the data's fault: say so before writing
    write_text_atomic(out, profile.to_yaml())
    if plot is not None:
        fit_plot(fits, Path(plot), f"pulse responses {Path(path).name}")
    return DWFileFit(profile, fits)


def fit_plot(fits: list[DWDeviceFit], path: Path, title: str = "") -> Path:
    """Every device's data scaled by its own fit, so that all fall on the model's curves: mean step
    vs overdrive, step variance vs overdrive, and mean step near an end vs the room left."""
    from spinlearn.plots import _pyplot, _save

    plt = _pyplot()
    fig, (ax_mean, ax_var, ax_edge) = plt.subplots(1, 3, figsize=(12, 3.6))
    for f in fits:
        g, p, length = f.groups, f.params, f.length_m
        ratio = g.amp / p["threshold_a"]
        ax_mean.plot(ratio, g.mean / (p["velocity_m_per_s"] / length * g.width), "o", ms=3, label=f.name)
        ax_var.plot(ratio, g.var / (2 * p["diffusion_m2_per_s"] / length**2 * g.width), "o", ms=3)
        if f.edge is not None:  # binned: one pulse's step is mostly diffusion
            room, mu, step = f.edge
            which = np.digitize(room / (p["edge_length_m"] / length), EDGE_BINS) - 1
            ok = (which >= 0) & (which < EDGE_BINS.size - 1)
            count = np.bincount(which[ok], minlength=EDGE_BINS.size - 1)
            ratio_sum = np.bincount(
                which[ok], (step / np.maximum(mu, 1e-300))[ok], minlength=EDGE_BINS.size - 1
            )
            centre = 0.5 * (EDGE_BINS[1:] + EDGE_BINS[:-1])
            ax_edge.plot(centre[count > 0], ratio_sum[count > 0] / count[count > 0], "o-", ms=3, lw=0.5)
    top = max(float((f.groups.amp / f.params["threshold_a"]).max()) for f in fits)
    x = np.linspace(0, top, 200)
    ax_mean.plot(x, np.maximum(x - 1, 0), "k-", lw=1, label="model")
    ax_var.plot(x, (x > 1).astype(float), "k-", lw=1)
    r = np.linspace(0, EDGE_BINS[-1], 200)
    ax_edge.plot(r, np.minimum(r, 1), "k-", lw=1)
    ax_mean.set(xlabel="|I| / I_th", ylabel="mean step / (v0 t)", title="drift")
    ax_var.set(xlabel="|I| / I_th", ylabel="step variance / (2 D t)", title="diffusion")
    ax_edge.set(xlabel="room left / lambda", ylabel="step / free mean step", title="edge shrink (binned)")
    ax_mean.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def report(result: DWFileFit) -> list[str]:
    """Per device its fit and quality; the median device; the warnings."""
    head = f"{'I_th mA':>9}{'v0 m/s':>9}{'D m2/s':>10}{'Gmin uS':>9}{'Gmax uS':>9}{'lambda nm':>11}"
    lines = [f"{'device':<14}{head}"]
    for f in result.fits:
        p = f.params
        edge = f"{p['edge_length_m'] * 1e9:.3g}" if f.quality["edge_identified"] else "n.i."
        lines.append(
            f"{f.name:<14}{p['threshold_a'] * 1e3:>9.4g}{p['velocity_m_per_s']:>9.4g}"
            f"{p['diffusion_m2_per_s']:>10.3g}{p['g_min_s'] * 1e6:>9.4g}{p['g_max_s'] * 1e6:>9.4g}{edge:>11}"
        )
    n = result.profile.nominal
    extra = ", ".join(f"{k} {n[k]:.3g}" for k in ("variability", "read_noise") if k in n)
    lines.append(
        f"median device: I_th {n['threshold_a'] * 1e3:.4g} mA, v0 {n['velocity_m_per_s']:.4g} m/s, "
        f"D {n['diffusion_m2_per_s']:.3g} m^2/s, G {n['g_min_s'] * 1e6:.4g}-{n['g_max_s'] * 1e6:.4g} uS"
        + (f", {extra}" if extra else "")
        + f" (L = {n['track_length_m']:g} m)"
    )
    return lines + [f"warning: device {f.name!r}: {w}" for f in result.fits for w in f.warnings]
