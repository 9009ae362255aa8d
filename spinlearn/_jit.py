"""What the numba kernels (:mod:`spinlearn.learning.afd_fused`, :mod:`spinlearn.learning.sgld_fused`,
the bank's rebalancing in :mod:`spinlearn.hardware.dw_bank`, the texture film's epoch in
:mod:`spinlearn.devices._texture_fused`, the telegraph noise in :mod:`spinlearn.devices.smtj_noise`)
share: their fast-math flags, the thread count they follow, and a compile that falls back to no
disk cache."""

from __future__ import annotations

import sys
import threading

import torch

from spinlearn.extras import installed

# fast-math without nnan/ninf: the kernels must see NaN and inf inputs as they are
FAST_MATH = {"contract", "reassoc", "nsz", "arcp", "afn"}
# numba's thread count as last set, per Python thread: numba keeps one per thread (torch one per
# process), and asking numba costs 2 us a call
_set = threading.local()


_numba: bool | None = None  # whether numba is installed, found out on first need


def available() -> bool:
    """Whether the fused kernels can run: numba (the ``[fast]`` extra) is installed. Without it every
    step runs the eager path, with the same results, and one line on stderr says so, once."""
    global _numba
    if _numba is None:
        _numba = installed("numba")
        if not _numba:
            print(
                "spinlearn: numba is not installed: the fused CPU kernels are off, the eager path runs "
                "(pip install 'spinlearn[fast]' for them)",
                file=sys.stderr,
            )
    return _numba


def follow_torch_threads() -> None:
    """Give numba, in the calling thread, torch's thread count, so that one setting governs both
    (a no-op when it has not changed since this thread's last call)."""
    wanted = torch.get_num_threads()
    if getattr(_set, "threads", 0) != wanted:
        import numba

        _set.given = max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))
        numba.set_num_threads(_set.given)
        _set.threads = wanted


def numba_threads() -> int:
    """The thread count :func:`follow_torch_threads` last gave numba in the calling thread (torch's,
    capped by ``NUMBA_NUM_THREADS``)."""
    return getattr(_set, "given", 1)


def compile_cached(factory):
    """``factory(cache=True)``, or ``factory(cache=False)`` where numba finds no writable cache
    directory (it raises at decoration): the kernel then compiles once per process."""
    try:
        return factory()
    except RuntimeError:
        return factory(cache=False)
