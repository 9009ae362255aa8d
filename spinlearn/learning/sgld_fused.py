r"""One DW-SGLD programming step of a crossbar's weights, fused into a single pass (CPU, numba).

What it computes is, element for element, what :class:`~spinlearn.learning.sgld.DWSGLD`'s
``_program`` composes from eager passes on any device, for each tensor's part of a window (one
call per window and up to :data:`GROUP` tensors):

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
5. the read-back :math:`w = (u_+ + u_-)\,w_{max}/L` (written for every response; a caller whose
   response is not linear overwrites it);

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
BLOCK = 1024  # weights per pass of the loop's two parts (its drift buffer stays in L1)
GROUP = 8  # segments per call: the kernels take tuples of this many arrays (one compiled signature)
_NO_VALUES = np.zeros(0, np.float32)  # pads a group's tuples
_NO_BITS = _NO_VALUES.view(np.uint32)
_kernels = None  # (segment, chunked, group, peaks), compiled on first use
_segment_kernel = _chunked_kernel = None  # the first two, as the others call them


def applies(u: torch.Tensor) -> bool:
    """Whether the fused step can program a bank whose wall positions are ``u``."""
    return u.device.type == "cpu" and u.dtype == torch.float32 and _jit.available()


def _compile(cache: bool = True):
    """The kernel over a segment, a parallel one that runs it over chunks of ``CHUNK`` weights, one
    that runs up to ``GROUP`` segments of a window, and the quantisation peaks.

    The loop runs over ``range(len)`` of (sliced) arrays with no branch but the edge test: numba wraps
    negative indices around, so a loop over ``range(lo, hi)`` carries that test on every load and does
    not vectorise (measured 4x slower). No branch on ``diffuse`` either: without a Langevin variance the
    pair variance is 0 and adds an exact 0, and the pair count is dropped by the caller. The counts are
    summed in float64: integers, so exact (below 2^53) in any order the vector lanes take.
    """
    from numba import njit, prange

    # The kernels call one another through module globals, not through this function's locals: a
    # closure over a compiled function pickles with an id that changes every process, which made
    # numba's disk cache miss (and grow) on every run.
    global _segment_kernel, _chunked_kernel
    f64 = np.float64

    @njit(fastmath=FAST_MATH, error_model="numpy", boundscheck=False, cache=cache)
    def segment(grad, active, passive, velocity, diffusion, noise, param, scalars):
        scale, unit_m, drift_var_m2, pair_var2_m2, pair_alpha, pairs_target, cool, pairs_floor, half, edge, \
            weight_per_m = scalars  # fmt: skip
        drift_n = f64(0.0)
        hot = f64(0.0)
        pair_n = f64(0.0)
        size = grad.shape[0]
        drift = np.empty(BLOCK, np.float32)
        for lo in range(0, size, BLOCK):
            hi = min(lo + BLOCK, size)
            g, a, p, v, d, xi, w = (
                grad[lo:hi], active[lo:hi], passive[lo:hi], velocity[lo:hi], diffusion[lo:hi],
                noise[lo:hi], param[lo:hi],
            )  # fmt: skip
            # c mu rounded before the device factor multiplies it, as the eager passes round it (in
            # one expression fast-math would regroup it as c (mu v))
            for i in range(g.shape[0]):
                drift[i] = np.rint(g[i] * scale) * unit_m
            for i in range(g.shape[0]):
                code = np.rint(g[i] * scale)
                n = abs(code)
                drift_n += f64(n)
                hot += f64(n > cool)
                var = n * drift_var_m2
                pairs = max(np.rint(pairs_target - pair_alpha * n), pairs_floor)
                pair_n += f64(pairs)
                var += pair_var2_m2 * pairs
                step = drift[i] * v[i] + xi[i] * np.sqrt(var * d[i])
                z = a[i]
                negative_room = np.copysign(z, z * step) - half  # -(room left in the step's direction)
                if negative_room > -edge:
                    step *= -negative_room / edge
                z = min(max(z + step, -half), half)
                a[i] = z
                w[i] = (z + p[i]) * weight_per_m
        return drift_n, hot, pair_n

    _segment_kernel = segment

    @njit(parallel=True, fastmath=FAST_MATH, error_model="numpy", boundscheck=False, cache=cache)
    def chunked(grad, active, passive, velocity, diffusion, noise, param, scalars):
        size = grad.shape[0]
        chunks = (size + CHUNK - 1) // CHUNK
        partial = np.zeros((chunks, 3), np.float64)
        for c in prange(chunks):
            lo = c * CHUNK
            hi = min(lo + CHUNK, size)
            partial[c, 0], partial[c, 1], partial[c, 2] = _segment_kernel(
                grad[lo:hi], active[lo:hi], passive[lo:hi], velocity[lo:hi], diffusion[lo:hi],
                noise[lo:hi], param[lo:hi], scalars,
            )  # fmt: skip
        return partial[:, 0].sum(), partial[:, 1].sum(), partial[:, 2].sum()

    _chunked_kernel = chunked

    @njit(error_model="numpy", boundscheck=False, cache=cache)
    def group(grads, params, starts, scalars, count, active, passive, velocity, diffusion, noise, parallel):
        counts = np.zeros((GROUP, 3), np.float64)
        for k in range(count):
            grad, param = grads[k], params[k]
            lo = starts[k]
            hi = lo + grad.shape[0]
            views = (active[lo:hi], passive[lo:hi], velocity[lo:hi], diffusion[lo:hi], noise[lo:hi])
            if parallel and grad.shape[0] > CHUNK:
                sums = _chunked_kernel(grad, *views, param, scalars[k])
            else:
                sums = _segment_kernel(grad, *views, param, scalars[k])
            counts[k, 0], counts[k, 1], counts[k, 2] = sums
        return counts

    @njit(error_model="numpy", boundscheck=False, cache=cache)
    def peaks(bits, count):
        # |g| of a float32 is its bit pattern without the sign bit, ordered as the floats are, and
        # every NaN pattern lies above inf's: an integer maximum (which vectorises, where a float
        # one that must see NaN does not) gives max |g|, inf, or a NaN
        largest = np.zeros(GROUP, np.uint32)
        magnitude = np.uint32(0x7FFFFFFF)
        for k in range(count):
            values = bits[k]
            top = np.uint32(0)
            for i in range(values.shape[0]):
                top = max(top, values[i] & magnitude)
            largest[k] = top
        return largest

    return segment, chunked, group, peaks


def _kernels_() -> tuple:
    global _kernels
    if _kernels is None:
        _kernels = compile_cached(_compile)
    follow_torch_threads()
    return _kernels


def _padded(items: list, pad) -> tuple:
    return (*items, *[pad] * (GROUP - len(items)))


def peaks(grads: list[np.ndarray]) -> list[float]:
    """``max |g|`` of each flat float32 gradient: NaN if it holds a NaN, inf if an inf (as
    ``max(-min, max)`` of :func:`torch.aminmax` gives it), in one pass per gradient and one call per
    :data:`GROUP` of them."""
    kernel = _kernels_()[3]
    found: list[float] = []
    for first in range(0, len(grads), GROUP):
        part = [g.view(np.uint32) for g in grads[first : first + GROUP]]
        top = kernel(_padded(part, _NO_BITS), len(part))
        found += top.view(np.float32)[: len(part)].tolist()
    return found


def program_window(
    window: tuple[np.ndarray, ...],
    segments: list[tuple[int, np.ndarray | None, np.ndarray, object]],
    noise: np.ndarray,
    diffuse: bool,
    clamp_pairs: bool,
    pairs_target: float,
    half: float,
    edge: float,
) -> list[tuple[int, int, int]]:
    """Program the ``segments`` of one window: ``window`` its (active, passive, velocity, diffusion)
    numpy views, ``noise`` its pool numbers; per segment its start in the window, its flat gradient
    (None: no drift), its parameter's numpy view and its crossbar's
    :class:`~spinlearn.learning.sgld._Plan`. Returns per segment the drift pulses, hot weights (0
    where the plan has no cool limit) and pairs (0 without ``diffuse``). The weights are read back
    for the linear response; a caller with another response writes them afterwards. One call into
    numba per :data:`GROUP` segments: a call costs microseconds, as much as a small layer's update."""
    kernel = _kernels_()[2]
    parallel = numba_threads() > 1
    found: list[tuple[int, int, int]] = []
    for first in range(0, len(segments), GROUP):
        part = segments[first : first + GROUP]
        grads, params, starts, rows = [], [], [], []
        for start, grad, param, plan in part:
            if grad is None or not plan.scale:
                # no drift to send (the crossbar's gradient is 0, or has a NaN or inf): eager sends code 0 too
                grad = np.zeros(len(param), np.float32)
            grads.append(grad)
            params.append(param)
            starts.append(start)
            rows.append(_scalars(plan, diffuse, clamp_pairs, pairs_target, half, edge))
        rows += [rows[0]] * (GROUP - len(part))
        counts = kernel(
            _padded(grads, _NO_VALUES), _padded(params, _NO_VALUES), np.array(_padded(starts, 0), np.int64),
            np.array(rows, np.float32), len(part), *window, noise, parallel,
        )  # fmt: skip
        found += [(int(d), int(h), int(p) if diffuse else 0) for d, h, p in counts[: len(part)].tolist()]
    return found


def _scalars(plan, diffuse: bool, clamp_pairs: bool, pairs_target: float, half: float, edge: float) -> tuple:
    """The kernel's per-segment numbers, in its order."""
    pair_var2 = 2.0 * plan.pair_var_m2 if diffuse else 0.0
    cool = np.inf if plan.cool is None else plan.cool
    return (plan.scale, plan.unit_m, plan.drift_var_m2, pair_var2, plan.pair_alpha, pairs_target, cool,
            0.0 if clamp_pairs else -np.inf, half, edge, plan.weight_per_m)  # fmt: skip
