r"""One AFD layer step on the simulated backend, fused into a single pass per neuron (CPU, numba).

What it computes is, element for element, the composition that :class:`~spinlearn.nn.MTJActivation`
runs on any backend (:mod:`spinlearn.learning.afd`):

1. the neuron read at :math:`I = z I_s` and its twin at :math:`I + \delta I`
   (:meth:`SimulatedBackend.read_pair <spinlearn.hardware.SimulatedBackend.read_pair>`): both
   tabulated curves (:class:`~spinlearn.devices.mtj.CurveTable`, cubic Hermite in power form) plus
   read noise :math:`\sigma_V \xi` from the backend's Gaussian pool;
2. the twin mismatch :math:`c(I)` interpolated from the calibration
   (:class:`~spinlearn.learning.afd.TwinCalibration`);
3. the output :math:`y = V / V_s` and the measured slope
   :math:`dy/dz = (V_2 - V_1 - c(I)) / \delta I \cdot I_s / V_s`
   (:func:`~spinlearn.learning.afd.twin_derivative`).

Why: in eager PyTorch these are some 30 elementwise passes and four table gathers per layer, each
pass paying a fixed cost on top of its arithmetic, which made an AFD network 2.2x the cost of the
same network with ``torch.tanh`` (``benchmarks/afd_vs_torch.py``, its 4 x 256 network, before this
kernel). Here each element is read once
and written twice. The equations stay where they are; this is their loop, and
``tests/test_afd_fused.py`` checks it against the composition above on the same noise.

The fused step applies on the CPU, in float32, with the backend's fast (tabulated) reads; anywhere
else, or when a current falls off the table's grid (or is not finite: the reference path then
raises), the caller runs the reference composition.
"""

from __future__ import annotations

import numpy as np
import torch

from spinlearn import _jit
from spinlearn._jit import FAST_MATH, compile_cached, follow_torch_threads

_kernel = None  # compiled on first use: numba's import and compilation cost seconds


def _compile(cache: bool = True):
    """The numba kernel (cached on disk by numba, so a later process loads it in a fraction of a second).

    Indices are unsigned: numba wraps negative signed indices around, which costs a few
    instructions per load in a loop that is a few dozen instructions long (measured 30 % of it).
    The grid positions are computed in a loop of their own because it vectorises (30 % again).
    """
    from numba import njit, prange

    u = np.uint64

    # fastmath without nnan/ninf (FAST_MATH): the grid test must see NaN and inf inputs
    @njit(parallel=True, fastmath=FAST_MATH, error_model="numpy", boundscheck=False, cache=cache)
    def afd_layer(z, n, pos_scale, pos_offset, table, last, noise, sigma, segments,
                  cal_scale, cal_offset, cal_top, inv_v, slope_scale, y_out,
                  slope_out, energy, current_scale, v_scale, delta_i, joule_rows):  # fmt: skip
        total = z.shape[0]
        zero = np.float32(0.0)
        outside = 0
        for b in prange(total // n):
            # Two loops per row: the first (grid positions) vectorises, the second (table reads) cannot
            # (a third, the energy, when a ledger is kept).
            at = np.empty(n, np.uint32)  # the neuron's interval in the curve table
            frac = np.empty(n, np.float32)
            cal_at = np.empty(n, np.uint32)  # its segment of the calibration
            cal_frac = np.empty(n, np.float32)
            row = u(b) * u(n)
            off_grid = 0
            for jj in range(n):
                j = u(jj)
                x = z[row + j]
                pos = x * pos_scale[j] + pos_offset[j]  # position on the neuron's table grid
                inside = (pos >= zero) & (pos < last)  # False for NaN
                off_grid += not inside
                pos = pos if inside else zero  # keep every index in range: the result is dropped
                x = x if inside else zero
                # Conversions through int32: AVX2 has them for int32 only (uint32 ones are emulated).
                k = np.int32(pos)
                frac[j] = pos - np.float32(k)
                at[j] = (np.uint32(k) * np.uint32(n) + np.uint32(j)) * np.uint32(8)  # 4 powers, 2 curves
                cpos = x * cal_scale + cal_offset  # position on the calibration grid
                lower = np.int32(min(max(cpos, zero), cal_top))
                cal_frac[j] = cpos - np.float32(lower)
                cal_at[j] = (np.uint32(lower) * np.uint32(n) + np.uint32(j)) * np.uint32(2)
            outside += off_grid
            vt_row = np.empty(n, np.float32)  # the twins' reads, for the energy
            for jj in range(n):
                j = u(jj)
                e = row + j
                a, f, c = u(at[j]), frac[j], u(cal_at[j])
                v = table[a] + f * (table[a + u(1)] + f * (table[a + u(2)] + f * table[a + u(3)]))
                vt = table[a + u(4)] + f * (table[a + u(5)] + f * (table[a + u(6)] + f * table[a + u(7)]))
                v += sigma * noise[e]
                vt += sigma * noise[u(total) + e]
                mismatch = segments[c] + segments[c + u(1)] * cal_frac[j]
                y_out[e] = v * inv_v
                slope_out[e] = (vt - v - mismatch) * slope_scale
                vt_row[j] = vt
            if energy:  # |I V| + |(I + dI) V_twin| in a loop of its own, which vectorises
                joule = np.float32(0.0)
                for jj in range(n):
                    j = u(jj)
                    current = z[row + j] * current_scale
                    joule += abs(current * y_out[row + j] * v_scale) + abs((current + delta_i) * vt_row[j])
                joule_rows[b] = joule
        return outside

    return afd_layer


class FusedAFD:
    """The fused step of one layer: tables laid out interval-major, ready for :meth:`__call__`.

    ``table`` is the group's :class:`~spinlearn.devices.mtj.CurveTable` (neurons at ``I``, twins at
    ``I + dI``), ``calibration`` the layer's :class:`~spinlearn.learning.afd.TwinCalibration`.
    Memory: a second copy of both curve tables, each interval's numbers for all neurons contiguous
    (4 MiB for a 256-wide layer at the default grid), and of the calibration (0.5 MiB).
    """

    def __init__(self, backend, table, calibration, i_scale_a: float, v_scale_v: float, delta_i_a: float):
        self.backend = backend
        n = table.pops[0].size
        f32 = np.float32
        self._n, self._last = np.uint64(n), f32(table.points - 1)
        # Interval-major, (interval, neuron, curve, power): the neurons of a row fall in a few
        # intervals near the curves' centre, so their reads share pages and cache lines. Neuron-major
        # spread them 16 KiB apart, a page each, and missed the TLB beyond ~500 neurons a layer.
        self._table = table.coefficients().transpose(0, 1).contiguous().numpy().reshape(-1)
        # The grid position from z directly: I = z I_s, pos = I scale + offset.
        self._pos_scale = (table.scale * torch.tensor(i_scale_a, dtype=torch.float32)).numpy()
        self._pos_offset = table.offset.contiguous().numpy()
        # The calibration interval-major too: (segment, neuron, value and rise).
        self._segments = calibration.segments().transpose(0, 1).contiguous().numpy().reshape(-1)
        self._cal_scale = f32(i_scale_a / calibration.step_a)
        self._cal_offset = f32(-calibration.i_min_a / calibration.step_a)
        self._cal_top = f32(calibration.offsets_v.shape[0] - 2)
        self._sigma = f32(backend.params.read_noise_v)
        self._inv_v = f32(1.0 / v_scale_v)
        self._slope_scale = f32(i_scale_a / v_scale_v / delta_i_a)
        self._current_scale, self._v_scale, self._delta_i = f32(i_scale_a), f32(v_scale_v), f32(delta_i_a)
        self._no_joule = np.empty(0, np.float64)

    @staticmethod
    def applies(backend, calibration, z: torch.Tensor) -> bool:
        """Whether the fused step can stand in for the reference composition for input ``z``."""
        return (
            getattr(backend, "fast", False)
            and hasattr(backend, "curve_table")  # the simulated backend's tables (not an instrument's)
            and calibration is not None
            and z.device.type == "cpu"
            and z.dtype == torch.float32
            and backend.dtype == torch.float32
            and z.dim() >= 1
            and _jit.available()
        )

    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(y, dy/dz)`` for pre-activations ``z`` (``(..., n)``, float32 CPU), or None when some
        current is off the grid or not finite: nothing is booked then (one noise window was
        drawn), and the caller's reference path takes over."""
        global _kernel
        if _kernel is None:
            _kernel = compile_cached(_compile)
        follow_torch_threads()
        z = z.detach()
        if not z.is_contiguous():
            z = z.contiguous()
        numel = z.numel()
        noise = self.backend.noise_window(2 * numel)
        y = torch.empty_like(z)
        slope = torch.empty_like(z)
        energy = self.backend.ledger is not None
        joule_rows = np.empty(numel // z.shape[-1], np.float64) if energy else self._no_joule
        outside = _kernel(
            z.numpy().reshape(-1), self._n, self._pos_scale, self._pos_offset, self._table,
            self._last, noise.numpy(), self._sigma, self._segments,
            self._cal_scale, self._cal_offset, self._cal_top, self._inv_v, self._slope_scale,
            y.numpy().reshape(-1), slope.numpy().reshape(-1), energy, self._current_scale, self._v_scale,
            self._delta_i, joule_rows,
        )  # fmt: skip
        if outside:
            return None
        self.backend.book_reads(2 * numel, float(joule_rows.sum()) if energy else 0.0)
        return y, slope
