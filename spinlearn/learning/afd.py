r"""Analog finite differences (AFD): every activation derivative is *measured* on twin devices.

Pereira et al. 2026, arXiv:2603.03947; see the study's page in the docs (docs/studies/afd.md). Each
neuron device has a twin; the neuron is biased at :math:`I`, the twin at :math:`I + \delta I`, and
the derivative of the activation is

.. math:: f'(I) \approx \frac{V_2(I + \delta I) - V_1(I) - c(I)}{\delta I}

where :math:`c(I) = V_2(I) - V_1(I)` is the twin mismatch, measured once before training at
:math:`\delta I = 0` on a grid of currents (the optional calibration) and interpolated linearly.
The learning rule is ordinary backprop in which every :math:`f'` comes from this measurement,
never from autograd of a formula:
:math:`\delta_l = (W_{l+1}^T \delta_{l+1}) \odot f'_{\mathrm{measured}}(I_l)`,
:math:`\Delta W_l = -\eta\, \delta_l h_{l-1}^T`.

Error budget of one derivative (why ``delta_i_a`` is a trade-off): read noise gives
:math:`\sqrt{2}\,\sigma_V / \delta I` (dominates for small :math:`\delta I`), truncation gives
:math:`|f''|\,\delta I / 2` (dominates for large :math:`\delta I`), and without calibration the
mismatch adds a bias :math:`c(I)/\delta I`. ``spinlearn run afd-gradcheck`` maps both regimes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spinlearn._fields import Validated, param
from spinlearn.hardware.backend import Backend

EDGE_FIT_POINTS = 16  # points per edge of the least-squares line that extrapolates beyond the grid
DEFAULT_CALIBRATION_RANGE = 32.0  # I_0 +/- 32 I_s: both devices far into their ohmic tails


@dataclass(frozen=True)
class AFDConfig(Validated):
    """How the twin derivative is measured."""

    delta_i_a: float = param(2e-6, "finite-difference step dI applied to the twin (A)", gt=0, le=1)
    calibrate: bool = param(True, "measure the twin mismatch c(I) at dI = 0 before training")
    calibration_points: int = param(257, "currents on the calibration grid", ge=EDGE_FIT_POINTS, le=100_000)
    calibration_reads: int = param(16, "reads averaged per calibration point", ge=1, le=10_000)
    calibration_range: float | None = param(
        None,
        "half-width of the calibrated current range, in units of the current scale I_s (null: "
        f"{DEFAULT_CALIBRATION_RANGE:g}, or with a device profile the widest its limits allow, at most that)",
        gt=0,
        le=1000,
    )


class TwinCalibration:
    """The twin mismatch ``c(I) = V_twin(I) - V_neuron(I)`` per device, on a uniform current grid.

    Between grid points ``c`` is interpolated linearly; outside the grid it is extrapolated along a
    least-squares line through the outer ``EDGE_FIT_POINTS`` of each edge: far from I_0 both devices
    are nearly ohmic (V ~ I R_P), so the mismatch grows linearly with I. (Holding the edge value
    leaves a bias c(I)/dI that grows without bound; extrapolating the last, noisy segment amplifies
    its read noise with distance.)
    """

    def __init__(self, i_min_a: float, step_a: float, offsets_v: torch.Tensor) -> None:
        self.i_min_a = i_min_a
        self.step_a = step_a
        self.offsets_v = offsets_v  # (points, n)
        # Each segment as (value, rise) per device, segment-contiguous: one gather reads both.
        points, n = offsets_v.shape
        segments = torch.stack((offsets_v[:-1], offsets_v[1:] - offsets_v[:-1]))  # (2, points-1, n)
        self._segments = segments.transpose(1, 2).contiguous().view(-1)
        device = offsets_v.device
        self._base = torch.arange(n, dtype=torch.int32, device=device) * (points - 1) + torch.arange(
            2, dtype=torch.int32, device=device
        )[:, None] * (n * (points - 1))
        self._affine: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}  # pos = I a + b

    @classmethod
    def measure(cls, backend: Backend, group: str, n: int, config: AFDConfig, dtype, device):
        """Sweep the grid ``config.calibration_reads`` times on neurons and twins at dI = 0."""
        params = backend.params
        half = (config.calibration_range or DEFAULT_CALIBRATION_RANGE) * params.current_scale_a
        points = config.calibration_points
        grid = torch.linspace(params.i0_a - half, params.i0_a + half, points, dtype=dtype, device=device)
        currents = grid[:, None].expand(points, n)
        offsets = torch.zeros(points, n, dtype=dtype, device=device)
        for _ in range(config.calibration_reads):  # one sweep at a time: memory ~ points x n
            offsets += backend.read(group, currents, twin=True) - backend.read(group, currents)
        offsets /= config.calibration_reads
        _straighten_edges(offsets)
        return cls(params.i0_a - half, 2 * half / (points - 1), offsets)

    def segments(self) -> torch.Tensor:
        """Each device's segments, ``(n, points - 1, 2)``: value at the segment's start, rise across it."""
        return self._segments.view(2, self.offsets_v.shape[1], -1).permute(1, 2, 0)

    def __call__(self, current_a: torch.Tensor) -> torch.Tensor:
        """Interpolated mismatch at ``current_a`` (shape ``(..., n)``), in volts.

        ``c_k + t (c_{k+1} - c_k)`` with ``k`` the segment (the edge one outside the grid) and ``t``
        the position in it (outside ``[0, 1]`` beyond the edges): one gather of both numbers.
        """
        points = self.offsets_v.shape[0]
        affine = self._affine.get(current_a.dtype)
        if affine is None:
            pair = torch.tensor([-self.i_min_a / self.step_a, 1.0 / self.step_a], dtype=current_a.dtype)
            affine = self._affine[current_a.dtype] = tuple(pair.to(current_a.device).unbind())
        pos = torch.addcmul(affine[0], current_a, affine[1])
        lower = pos.clamp(0, points - 2).floor_()
        frac = (pos - lower).to(self.offsets_v.dtype)
        k = lower.to(torch.int32)
        index = k.unsqueeze(0) + self._base.view(2, *(1,) * (k.dim() - 1), -1)
        below, rise = self._segments.index_select(0, index.view(-1)).view(index.shape)
        return torch.addcmul(below, rise, frac)


def _straighten_edges(offsets: torch.Tensor) -> None:
    """Put the two outermost points of each edge on a line fitted to the outer ``EDGE_FIT_POINTS``.

    Linear interpolation extrapolates along the edge segment, so this makes the extrapolation follow
    the fitted line (in place; grid units, so the fit needs no currents).
    """
    k = EDGE_FIT_POINTS
    x = torch.arange(k, dtype=offsets.dtype, device=offsets.device)
    xc = x - x.mean()
    for edge, outer in ((offsets[:k], slice(0, 2)), (offsets[-k:], slice(k - 2, k))):
        mean = edge.mean(0)
        slope = (xc[:, None] * (edge - mean)).sum(0) / (xc * xc).sum()
        edge[outer] = mean + slope * xc[outer, None]


def twin_derivative(
    v_neuron: torch.Tensor,
    v_twin_shifted: torch.Tensor,
    delta_i_a: float,
    mismatch_v: torch.Tensor | float = 0.0,
    scale: float = 1.0,
) -> torch.Tensor:
    """f'(I) ~ (V_twin(I + dI) - V_neuron(I) - c(I)) / dI, in ohms (V/A), times ``scale`` (three passes)."""
    return torch.sub(v_twin_shifted, v_neuron).sub_(mismatch_v).mul_(scale / delta_i_a)


class _MeasuredSlope(torch.autograd.Function):
    """Value ``y``; ``dL/dz = dL/dy * slope``. One node: its forward does no tensor pass at all."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, y: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(slope)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None


def measured_slope(z: torch.Tensor, y: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """The measured output ``y`` whose derivative with respect to ``z`` is the measured ``slope``:
    the only path by which a derivative enters training.

    A custom autograd node rather than ``y + (z - z.detach()) * slope``: that form needs two
    elementwise passes in the forward for a value that is ``y`` anyway, and in the benchmark's
    4 x 256 network (``benchmarks/afd_vs_torch.py``, ``ratio_4x256_sgd``, fused reads) the node
    measured 1.35 vs 1.40 (medians of four alternating runs each).
    """
    return _MeasuredSlope.apply(z, y, slope)
