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

from spinlearn.learning import _jit
from spinlearn.learning._jit import FAST_MATH, compile_cached, follow_torch_threads

BLOCK = 512  # weights per parallel block: its pulse counts (<= 512 x (2^15 - 1) < 2^24) stay exact in float32
_kernel = None  # compiled on first use


def applies(u: torch.Tensor) -> bool:
    """Whether the fused step can program a bank whose wall positions are ``u``."""
    return u.device.type == "cpu" and u.dtype == torch.float32 and _jit.available()


def _compile(cache: bool = True):
    from numba import njit, prange

    f32 = np.float32

    @njit(parallel=True, fastmath=FAST_MATH, error_model="numpy", boundscheck=False, cache=cache)
    def program(grad, active, passive, velocity, diffusion, noise, param, scale, unit_m, drift_var_m2,
                pair_var2_m2, pair_alpha, pairs_target, cool, diffuse, pairs_floor, half, edge,
                weight_per_m, read_back, counts):  # fmt: skip
        size = grad.shape[0]
        blocks = (size + BLOCK - 1) // BLOCK
        partial = np.zeros((blocks, 3), np.float32)
        zero = f32(0.0)
        for b in prange(blocks):
            lo = b * BLOCK
            hi = min(lo + BLOCK, size)
            moved = np.empty(BLOCK, np.float32)  # the new positions, written back in a loop of its own:
            drift_n = zero  # stores into the arrays in this loop would keep it from vectorising
            hot = zero
            pair_n = zero
            # No branch but loop-invariant ones and the edge test: any other keeps the loop from vectorising.
            for i in range(lo, hi):
                code = np.rint(grad[i] * scale)
                n = abs(code)
                drift_n += n
                hot += f32(n > cool)
                var = n * drift_var_m2
                if diffuse:
                    pairs = max(np.rint(pairs_target - pair_alpha * n), pairs_floor)
                    pair_n += pairs
                    var += pair_var2_m2 * pairs
                step = code * unit_m * velocity[i] + noise[i] * np.sqrt(var * diffusion[i])
                z = active[i]
                negative_room = np.copysign(z, z * step) - half  # -(room left in the step's direction)
                if negative_room > -edge:
                    step *= -negative_room / edge
                moved[i - lo] = min(max(z + step, -half), half)
            for i in range(lo, hi):
                z = moved[i - lo]
                active[i] = z
                if read_back:
                    param[i] = (z + passive[i]) * weight_per_m
            partial[b, 0] = drift_n
            partial[b, 1] = hot
            partial[b, 2] = pair_n
        for k in range(3):
            total = 0
            for b in range(blocks):
                total += np.int64(partial[b, k])
            counts[k] = total

    return program


def program_segment(arrays: tuple, grad: torch.Tensor, noise: np.ndarray, plan, diffuse: bool,
                    clamp_pairs: bool, pairs_target: float, half: float, edge: float, read_back: bool,
                    counts: np.ndarray) -> None:  # fmt: skip
    """Program one segment: ``arrays`` its (active, passive, velocity, diffusion, parameter) numpy
    views, ``grad`` its flat gradient, ``noise`` its pool numbers, ``plan`` its crossbar's
    :class:`~spinlearn.learning.sgld._Plan`. Writes the drift pulses, hot weights (0 where the plan
    has no cool limit) and pairs into ``counts`` (int64, 3)."""
    global _kernel
    if _kernel is None:
        _kernel = compile_cached(_compile)
    follow_torch_threads()
    active, passive, velocity, diffusion, param = arrays
    f32 = np.float32
    if plan.scale:
        grad = grad.numpy()
    else:  # no drift to send (the crossbar's gradient is 0, or has a NaN or inf): eager sends code 0 too
        grad = np.zeros(len(noise), np.float32)
    _kernel(
        grad, active, passive, velocity, diffusion, noise, param, f32(plan.scale), f32(plan.unit_m),
        f32(plan.drift_var_m2), f32(2.0 * plan.pair_var_m2), f32(plan.pair_alpha), f32(pairs_target),
        f32(np.inf if plan.cool is None else plan.cool), diffuse, f32(0.0 if clamp_pairs else -np.inf),
        f32(half), f32(edge), f32(plan.weight_per_m), read_back, counts,
    )  # fmt: skip
