r"""One epoch of the texture film's delta law in two numba passes (CPU): the pulse loop and the
symmetric write-back.

What it computes is what :meth:`TextureFilm.apply <spinlearn.devices.texture.TextureFilm.apply>`
composes from eager torch calls (the law and its low-rank form are in :mod:`.texture`):

1. :func:`pulses`: the sequential loop. Pattern :math:`\mu` meets the field
   :math:`y_\mu = (s_\mu W_0 + \eta\,\mathrm{corr}_\mu - d \circ s_\mu) / N`, with the correction
   :math:`\sum_{\nu<\mu} (\rho\,(a_\nu\!\cdot s_\mu) - \tfrac12 (b_\nu\!\cdot s_\mu))\,a_\nu
   - \tfrac12 (a_\nu\!\cdot s_\mu)\,b_\nu` over the pulses before it and :math:`d` the diagonal the
   updates so far would have put on :math:`W`; it writes :math:`b_\mu = c \circ y_\mu` and adds its
   pulse's share to :math:`d`.
2. :func:`write_back`: :math:`W \leftarrow \mathrm{clip}(W + \eta (H + H^T) + k (Z + Z^T), -1, 1)`
   with a zero diagonal, for the epoch's summed update :math:`H` and the write noise
   :math:`Z` (:func:`~spinlearn.devices.texture.symmetric_noise`'s draw, scaled by ``k``); both
   links of a pair at once, in tiles, so that the transposes are read from cache.

Why: eagerly the loop is some ten torch calls per pulse (each a few microseconds besides its
arithmetic), and the write-back five passes over :math:`N^2` numbers besides the noise draw:
together they were three quarters of an epoch at N = 1000 (``benchmarks/hopfield_n1000.py``).

The write-back does the eager passes' arithmetic in their order, without fast-math, so it is
bitwise the eager result. The loop sums its products in another order than the BLAS (fast-math,
so that the dot products vectorise): it agrees with the eager loop to float rounding
(``tests/test_hopfield.py``; ``tests/test_reference_runs.py`` holds it to a stored run).
"""

from __future__ import annotations

import numpy as np
import torch

from spinlearn import _jit

TILE = 64  # links per tile side in the write-back: its six 64 x 64 tiles (96 KiB in float32) stay in L2
_kernels = None  # (pulses, write_back), compiled on first use


def applies(w: torch.Tensor) -> bool:
    """Whether the fused epoch can update a texture ``w``."""
    return w.device.type == "cpu" and w.dtype in (torch.float32, torch.float64) and _jit.available()


def _compile(cache: bool = True):
    from numba import njit

    @njit(fastmath=_jit.FAST_MATH, error_model="numpy", boundscheck=False, cache=cache)
    def pulses(s, ab, ax_all, field0, coupling, diag, eta, rho, n_nodes, half, zero):
        # the scalars come in the film's dtype (a Python number here would be float64 and promote)
        count, n = s.shape
        weights = np.empty((count, 2), s.dtype)
        y = np.empty(n, s.dtype)
        for mu in range(count):
            x = s[mu]
            b_mu, a_mu = ab[mu, 1], ab[mu, 0]
            if mu:
                for nu in range(mu):
                    b_nu = ab[nu, 1]
                    bx = zero
                    for i in range(n):
                        bx += b_nu[i] * x[i]
                    ax = ax_all[nu, mu]
                    weights[nu, 0] = -half * bx + rho * ax
                    weights[nu, 1] = -half * ax
                y[:] = zero
                for nu in range(mu):
                    wa, wb = weights[nu, 0], weights[nu, 1]
                    a_nu, b_nu = ab[nu, 0], ab[nu, 1]
                    for i in range(n):
                        y[i] += wa * a_nu[i] + wb * b_nu[i]
                for i in range(n):
                    b_mu[i] = coupling[i] * ((eta * y[i] - diag[i] * x[i]) / n_nodes + field0[mu, i])
            else:
                for i in range(n):
                    b_mu[i] = coupling[i] * field0[0, i]
            for i in range(n):
                diag[i] += -eta * (a_mu[i] * (b_mu[i] - rho * a_mu[i]))

    # no fast-math: each product and sum rounds as the eager passes' do, in their order
    @njit(error_model="numpy", boundscheck=False, cache=cache)
    def write_back(w, update, eta, noise, scale, with_noise):
        n = w.shape[0]
        one = w.dtype.type(1.0)
        for ti in range(0, n, TILE):
            for tj in range(ti, n, TILE):
                for i in range(ti, min(ti + TILE, n)):
                    for j in range(max(tj, i + 1), min(tj + TILE, n)):
                        drift = eta * (update[i, j] + update[j, i])
                        upper, lower = w[i, j] + drift, w[j, i] + drift
                        if with_noise:
                            z = scale * (noise[i, j] + noise[j, i])
                            upper, lower = upper + z, lower + z
                        w[i, j] = min(max(upper, -one), one)
                        w[j, i] = min(max(lower, -one), one)
        for i in range(n):
            w[i, i] = 0.0

    return pulses, write_back


def _get():
    global _kernels
    if _kernels is None:
        _kernels = _jit.compile_cached(_compile)
    return _kernels


def pulses(s, ab, ax_all, field0, coupling, diag, eta: float, rho: float) -> None:
    """Run the epoch's pulse loop: fills ``ab[:, 1]`` (the ``b`` of every pattern) and ``diag``
    (numpy arrays of the film's dtype; ``ab[:, 0]`` holds the ``a`` of every pattern)."""
    kind = s.dtype.type
    constants = (kind(eta), kind(rho), kind(s.shape[1]), kind(0.5), kind(0.0))
    _get()[0](s, ab, ax_all, field0, coupling, diag, *constants)


def write_back(w, update, eta: float, noise, scale: float) -> None:
    """``w <- clip(w + eta (update + update^T) + scale (noise + noise^T), -1, 1)``, zero diagonal,
    in place (numpy arrays; ``noise`` None: no write noise)."""
    kind = w.dtype.type
    with_noise = noise is not None
    _get()[1](w, update, kind(eta), update if noise is None else noise, kind(scale), with_noise)
