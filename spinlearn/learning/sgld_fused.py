r"""One DW-SGLD programming step of a crossbar's weights, fused into a single pass (CPU, numba).

What it computes is, element for element, what :class:`~spinlearn.learning.sgld.DWSGLD`'s
``_program`` composes from eager passes on any device, for one tensor's part of a window (a call
per tensor and window):

1. the drift code :math:`c = \mathrm{round}(-\eta g / \Delta)` (:func:`~spinlearn.learning.sgld.quantise`'s
   rounding, half to even) and its :math:`n = |c|` drift pulses;
2. the push-pull pairs :math:`p = \max(0, \mathrm{round}(P - \alpha n))` that top the drift pulses'
   own diffusion up to the Langevin variance, and the variance of the whole train
   :math:`n \sigma_d^2 + 2 p \sigma_p^2` (m\ :sup:`2`);
3. the wall's free step :math:`c\,\mu\,v + \xi \sqrt{\mathrm{var}\,D}`, with :math:`\mu` the nominal
   wall step of one drift pulse (m), :math:`v, D` the device's velocity and diffusion factors and
   :math:`\xi` a standard normal number from the optimizer's pool
   (:func:`~spinlearn.devices.domain_wall.wall_steps`);
4. the move, a step towards an end shrunk by :math:`\min(1, d/\lambda)` and the wall kept on the
   track (:func:`~spinlearn.devices.domain_wall.move_walls`);
5. the read-back :math:`w = (u_+ + u_-)\,w_{max}/L` for the linear response;

and it counts the drift pulses, the hot weights (more drift pulses than the variance allows) and
the pairs. The equations stay in their modules; this is their loop.

Why: eagerly these are some 20 elementwise passes over every weight, and a pass costs a few
microseconds besides its arithmetic, which made a DW-SGLD step about 2x a plain SGD step on
``mnist-dw-sgld``'s MLP (``benchmarks/dw_sgld_vs_sgd.py``). Here each weight is read once.

It applies on the CPU in float32; anywhere else (CUDA, float64) the eager passes run. On the same
pool numbers the two send the same pulses, and the walls agree to float rounding
(``tests/test_sgld_fused.py``): the step is computed as :math:`\xi\sqrt{\cdot}` here and as
:math:`\xi / \mathrm{rsqrt}(\cdot)` there.
"""

from __future__ import annotations

import numpy as np
import torch

from spinlearn import _jit
from spinlearn._jit import FAST_MATH, compile_cached, follow_torch_threads, numba_threads

CHUNK = 1 << 14  # weights per parallel task: large enough that a task's start-up is a few percent of it
_kernels = None  # (serial, parallel), compiled on first use


def applies(u: torch.Tensor) -> bool:
    """Whether the fused step can program a bank whose wall positions are ``u``."""
    return u.device.type == "cpu" and u.dtype == torch.float32 and _jit.available()


def _compile(cache: bool = True):
    """The kernel over a segment, and a parallel one that runs it over chunks of ``CHUNK`` weights.

    The loop runs over ``range(len)`` of (sliced) arrays with no branch but the edge test: numba wraps
    negative indices around, so a loop over ``range(lo, hi)`` carries that test on every load and does
    not vectorise (measured 4x slower). No branch on ``diffuse`` either: without a Langevin variance the
    pair variance is 0 and adds an exact 0, and the pair count is dropped by the caller. The counts are
    summed in float64: integers, so exact (below 2^53) in any order the vector lanes take.
    """
    from numba import njit, prange

    f64 = np.float64

    @njit(fastmath=FAST_MATH, error_model="numpy", boundscheck=False, cache=cache)
    def segment(grad, active, passive, velocity, diffusion, noise, param, scalars):
        scale, unit_m, drift_var_m2, pair_var2_m2, pair_alpha, pairs_target, cool, pairs_floor, half, edge, \
            weight_per_m = scalars  # fmt: skip
        drift_n = f64(0.0)
        hot = f64(0.0)
        pair_n = f64(0.0)
        for i in range(grad.shape[0]):
            code = np.rint(grad[i] * scale)
            n = abs(code)
            drift_n += f64(n)
            hot += f64(n > cool)
            pairs = max(np.rint(pairs_target - pair_alpha * n), pairs_floor)
            pair_n += f64(pairs)
            var = n * drift_var_m2 + pair_var2_m2 * pairs
            step = code * unit_m * velocity[i] + noise[i] * np.sqrt(var * diffusion[i])
            z = active[i]
            negative_room = np.copysign(z, z * step) - half  # -(room left in the step's direction)
            if negative_room > -edge:
                step *= -negative_room / edge
            z = min(max(z + step, -half), half)
            active[i] = z
            param[i] = (z + passive[i]) * weight_per_m
        return drift_n, hot, pair_n

    @njit(parallel=True, fastmath=FAST_MATH, error_model="numpy", boundscheck=False, cache=cache)
    def chunked(grad, active, passive, velocity, diffusion, noise, param, scalars):
        size = grad.shape[0]
        chunks = (size + CHUNK - 1) // CHUNK
        partial = np.zeros((chunks, 3), np.float64)
        for c in prange(chunks):
            lo = c * CHUNK
            hi = min(lo + CHUNK, size)
            partial[c, 0], partial[c, 1], partial[c, 2] = segment(
                grad[lo:hi], active[lo:hi], passive[lo:hi], velocity[lo:hi], diffusion[lo:hi],
                noise[lo:hi], param[lo:hi], scalars,
            )  # fmt: skip
        return partial[:, 0].sum(), partial[:, 1].sum(), partial[:, 2].sum()

    return segment, chunked


def _kernels_() -> tuple:
    global _kernels
    if _kernels is None:
        _kernels = compile_cached(_compile)
    follow_torch_threads()
    return _kernels


def program_segment(
    arrays: tuple,
    grad: np.ndarray | None,
    noise: np.ndarray,
    plan,
    diffuse: bool,
    clamp_pairs: bool,
    pairs_target: float,
    half: float,
    edge: float,
) -> tuple[int, int, int]:
    """Program one segment: ``arrays`` its (active, passive, velocity, diffusion, parameter) numpy
    views, ``grad`` its flat gradient (None: no drift), ``noise`` its pool numbers, ``plan`` its
    crossbar's :class:`~spinlearn.learning.sgld._Plan`. Returns the drift pulses, hot weights (0
    where the plan has no cool limit) and pairs (0 without ``diffuse``). The weights are read back
    for the linear response; a caller with another response writes them afterwards."""
    serial, chunked = _kernels_()
    active, passive, velocity, diffusion, param = arrays
    if grad is None or not plan.scale:
        # no drift to send (the crossbar's gradient is 0, or has a NaN or inf): eager sends code 0 too
        grad = np.zeros(len(noise), np.float32)
    kernel = chunked if len(grad) > CHUNK and numba_threads() > 1 else serial
    # one float32 array: numba unboxes a numpy scalar argument in about 2 us, an array in 0.1 us
    pair_var2 = 2.0 * plan.pair_var_m2 if diffuse else 0.0
    cool = np.inf if plan.cool is None else plan.cool
    scalars = np.array(
        (plan.scale, plan.unit_m, plan.drift_var_m2, pair_var2, plan.pair_alpha, pairs_target, cool,
         0.0 if clamp_pairs else -np.inf, half, edge, plan.weight_per_m),
        np.float32,
    )  # fmt: skip
    drift, hot, pairs = kernel(grad, active, passive, velocity, diffusion, noise, param, scalars)
    return int(drift), int(hot), int(pairs) if diffuse else 0
