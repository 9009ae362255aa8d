"""SynapseBank: the domain-wall pairs behind several weight tensors, side by side in one storage.

Why: an eager DW-SGLD update (:class:`spinlearn.learning.sgld.DWSGLD` unfused, or off the CPU) is
some 20 elementwise passes, and on a CPU each pass costs a fixed few microseconds besides its
arithmetic, so a 2,570-weight tensor's
update cost half as much as a 200,000-weight one's. A bank holds the walls and device factors of
consecutive tensors in flat buffers, so one set of passes updates all of them; only the few
operations that need a tensor's own scales (its quantisation step, its pulse widths) run per tensor.

Each tensor's :class:`~spinlearn.hardware.dw_synapses.DWSynapses` keeps its buffers, re-pointed to
views into the bank, so the layers, ``state_dict`` and ``load_state_dict`` see no difference. If a
buffer is replaced (``model.to(device)``, an assigning load) the bank no longer holds it:
:meth:`SynapseBank.holds_all` says so and the optimizer builds a new bank from the buffers as they are.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from spinlearn import _jit

CHUNK = 1 << 19  # weights per window of an update: bounds its scratch (fastest here of 2^15..2^20)
_BUFFERS = ("u", "velocity", "diffusion", "plus_active")
_swap_kernel = None  # compiled on first use


def _compile_swap(cache: bool = True):
    """One pass that swaps every pair whose passive device is nearer the middle of its track: the
    eager passes are some 15 over the bank, this reads each pair once (a swap: nothing is rounded)."""
    from numba import njit

    @njit(error_model="numpy", boundscheck=False, cache=cache)
    def swap(u, velocity, diffusion, plus_active):
        # bound by memory (12 arrays read, those of the swapped pairs written): a branch-free
        # form that vectorises measured no faster
        for i in range(u.shape[1]):
            if abs(u[1, i]) < abs(u[0, i]):
                u[0, i], u[1, i] = u[1, i], u[0, i]
                velocity[0, i], velocity[1, i] = velocity[1, i], velocity[0, i]
                diffusion[0, i], diffusion[1, i] = diffusion[1, i], diffusion[0, i]
                plus_active[i] = not plus_active[i]

    return swap


class Segment(NamedTuple):
    """The part of tensor ``index`` that a window updates: ``window`` in the window's scratch,
    ``flat`` in the tensor's flat view."""

    index: int
    window: slice
    flat: slice


class SynapseBank:
    """The synapses of ``params`` (parameters with a ``synapses`` attribute, same device kind,
    dtype and device) in flat buffers ``u``, ``velocity``, ``diffusion`` (2, total): row 0 the
    active device of each pair, row 1 the passive one; ``plus_active`` (total,).

    The update runs in windows of at most ``CHUNK`` weights (:attr:`windows`), each a list of
    :class:`Segment`.
    """

    def __init__(self, params: list[nn.Parameter], chunk: int | None = None) -> None:
        if not params:
            raise ValueError("a bank needs at least one parameter")
        self.params = list(params)
        self.synapses = [p.synapses for p in self.params]
        first = self.synapses[0]
        self.dw_params = first.params  # the device kind's parameters (DWParams)
        self.rebalance_every = first.rebalance_every
        self.sizes = [s.plus_active.numel() for s in self.synapses]
        self.starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.total = sum(self.sizes)
        self.u = torch.cat([s.u.reshape(2, -1) for s in self.synapses], 1)
        self.velocity = torch.cat([s.velocity.reshape(2, -1) for s in self.synapses], 1)
        self.diffusion = torch.cat([s.diffusion.reshape(2, -1) for s in self.synapses], 1)
        self.plus_active = torch.cat([s.plus_active.reshape(-1) for s in self.synapses])
        for s, start, size in zip(self.synapses, self.starts, self.sizes, strict=True):
            window = slice(start, start + size)
            shape = s.plus_active.shape
            s.u = self.u[:, window].view(2, *shape)
            s.velocity = self.velocity[:, window].view(2, *shape)
            s.diffusion = self.diffusion[:, window].view(2, *shape)
            s.plus_active = self.plus_active[window].view(shape)
        self._pointers = self._current_pointers()
        self.windows = self._windows(CHUNK if chunk is None else chunk)
        self.flat_params = [p.detach().view(-1) for p in self.params]
        self._updates = 0

    @staticmethod
    def compatible(a: nn.Parameter, b: nn.Parameter) -> bool:
        """Whether ``a`` and ``b`` can share a bank: the same device kind, dtype and device."""
        sa, sb = a.synapses, b.synapses
        return (
            sa.params == sb.params
            and sa.rebalance_every == sb.rebalance_every
            and a.dtype == b.dtype
            and a.device == b.device
        )

    @classmethod
    def pack(cls, params: list[nn.Parameter], chunk: int | None = None) -> list[SynapseBank]:
        """Banks of consecutive compatible ``params``, each at most ``chunk`` (default ``CHUNK``)
        weights; a larger tensor gets a bank of its own, updated in windows."""
        chunk = CHUNK if chunk is None else chunk
        banks, current, size = [], [], 0
        for p in params:
            n = p.numel()
            if current and (size + n > chunk or not cls.compatible(current[0], p)):
                banks.append(cls(current, chunk))
                current, size = [], 0
            current.append(p)
            size += n
        if current:
            banks.append(cls(current, chunk))
        return banks

    def _current_pointers(self) -> tuple[int, ...]:
        # ``_buffers`` directly: a module attribute lookup costs a microsecond, checked every step
        return tuple(s._buffers[name].data_ptr() for s in self.synapses for name in _BUFFERS) + tuple(
            p.data_ptr() for p in self.params
        )

    def holds_all(self) -> bool:
        """Whether every synapse buffer and parameter is still the view this bank made."""
        return self._current_pointers() == self._pointers

    def _windows(self, chunk: int) -> list[list[Segment]]:
        windows = []
        for first in range(0, self.total, chunk):
            last = min(first + chunk, self.total)
            segments = []
            for i, (start, size) in enumerate(zip(self.starts, self.sizes, strict=True)):
                lo, hi = max(start, first), min(start + size, last)
                if lo < hi:
                    segments.append(Segment(i, slice(lo - first, hi - first), slice(lo - start, hi - start)))
            windows.append(segments)
        return windows

    def window_range(self, w: int) -> slice:
        """The range of window ``w`` in the bank's flat buffers."""
        first = self.starts[self.windows[w][0].index] + self.windows[w][0].flat.start
        last = self.starts[self.windows[w][-1].index] + self.windows[w][-1].flat.stop
        return slice(first, last)

    def begin_update(self, scratch: tuple[torch.Tensor, ...], kernel: bool = True) -> None:
        """Called once per optimizer step, before programming: every ``rebalance_every`` updates,
        the device nearer the middle of its track becomes the active one (so that programming
        keeps headroom both ways and neither device drifts to an end). ``scratch``, ``kernel``:
        see :meth:`rebalance`."""
        self._updates += 1
        if self._updates % self.rebalance_every == 0:
            self.rebalance(scratch, kernel)

    def rebalance(self, scratch: tuple[torch.Tensor, ...] | None = None, kernel: bool = True) -> None:
        """Make the device nearer the middle of its track the active one, in every pair.

        With ``kernel``, on a CPU in float32 with numba: one pass over the bank that swaps the
        pairs' numbers. Otherwise eager passes, window by window in ``scratch`` (three flat buffers
        of at least a window each; fresh ones if None: a fresh buffer costs more than the arithmetic
        here). The two agree exactly on finite positions, but for the sign of a zero (the eager
        sum gives +0)."""
        if kernel and self.u.device.type == "cpu" and self.u.dtype == torch.float32 and _jit.available():
            global _swap_kernel
            if _swap_kernel is None:
                _swap_kernel = _jit.compile_cached(_compile_swap)
            arrays = (self.u, self.velocity, self.diffusion, self.plus_active)
            _swap_kernel(*(a.numpy() for a in arrays))
            return
        for w in range(len(self.windows)):
            span = self.window_range(w)
            size = span.stop - span.start
            swap, keep, first = (
                (torch.empty_like(self.u[0, span]) for _ in range(3))
                if scratch is None
                else (buf[:size] for buf in scratch)
            )
            torch.lt(torch.abs(self.u[1, span], out=keep), torch.abs(self.u[0, span], out=first), out=swap)
            torch.sub(swap.new_ones(()), swap, out=keep)  # swap: 1.0 where the passive one takes over
            # exact on finite numbers: products with 0 and 1, sums with 0 (an inf would give NaN)
            for pair in (self.u, self.velocity, self.diffusion):
                active, passive = pair[0, span], pair[1, span]
                torch.mul(active, keep, out=first).addcmul_(passive, swap)
                passive.mul_(keep).addcmul_(active, swap)
                active.copy_(first)
            self.plus_active[span].logical_xor_(swap.bool())  # a bool operand: 7x faster than a float one
