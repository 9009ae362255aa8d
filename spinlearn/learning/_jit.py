"""What the numba kernels (:mod:`.afd_fused`, :mod:`.sgld_fused`) share: their fast-math flags,
the thread count they follow, and a compile that falls back to no disk cache."""

from __future__ import annotations

import torch

# fast-math without nnan/ninf: the kernels must see NaN and inf inputs as they are
FAST_MATH = {"contract", "reassoc", "nsz", "arcp", "afn"}
_threads = 0  # numba's thread count as last set: torch's, so that one setting governs both


def follow_torch_threads() -> None:
    """Give numba torch's thread count (a no-op when it has not changed since the last call)."""
    global _threads
    wanted = torch.get_num_threads()
    if wanted != _threads:
        import numba

        numba.set_num_threads(max(1, min(wanted, numba.config.NUMBA_NUM_THREADS)))
        _threads = wanted


def compile_cached(factory):
    """``factory(cache=True)``, or ``factory(cache=False)`` where numba finds no writable cache
    directory (it raises at decoration): the kernel then compiles once per process."""
    try:
        return factory()
    except RuntimeError:
        return factory(cache=False)
