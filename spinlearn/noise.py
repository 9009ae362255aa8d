"""Standard normal numbers for simulators whose cost is dominated by drawing them.

``torch.randn`` on a CPU generator (MT19937 with Box-Muller) costs about 7 ns a number here: more than
a whole domain-wall update of a weight may cost. :class:`GaussianPool` draws a large pool of N(0, 1)
numbers from the run's generator and hands out contiguous windows of it at uniformly random offsets
(drawn from the same generator); once ``reuse`` times its size has been handed out, it redraws the
pool. What this keeps and what it gives up:

* every number is exactly N(0, 1), and the numbers of one window are independent;
* two windows share numbers only where they overlap, and then at *different* positions (unless
  their offsets coincide, probability ``1 / (size - n)``): an element's noise in successive
  requests is uncorrelated, but some pairs (element i at one request, element j at another) are
  equal. For Langevin training of millions of weights this is immaterial; for a statistic that
  needs every pair of requests independent, use ``exact=True`` (plain ``torch.randn``);
* the cost falls to about ``1 / reuse`` of ``torch.randn``'s, and it is reproducible per seed.

Each window's offset is one ``torch.randint`` draw (and a sync) by default; with
``offsets_per_draw = k`` the offsets come from ``k`` uniforms drawn at once, which saves that draw per
window where windows are small and frequent (the simulated MTJ backend's read noise: 256).
"""

from __future__ import annotations

import torch

MIN_POOL = 1 << 22  # 4 Mi numbers (16 MiB in float32)


class GaussianPool:
    """Windows of a pool of standard normal numbers (module doc); ``exact=True``: fresh ``torch.randn``.

    The pool holds at least ``MIN_POOL`` numbers and at least ``spread`` times the largest request,
    so that windows land at many different offsets.
    """

    def __init__(
        self,
        generator: torch.Generator,
        dtype: torch.dtype = torch.float32,
        reuse: int = 8,
        spread: int = 16,
        exact: bool = False,
        offsets_per_draw: int = 1,
    ) -> None:
        if reuse < 1 or spread < 2 or offsets_per_draw < 1:
            raise ValueError(
                "need reuse >= 1, spread >= 2, offsets_per_draw >= 1; "
                f"got {reuse}, {spread}, {offsets_per_draw}"
            )
        self.offsets_per_draw = offsets_per_draw
        self._uniforms: list[float] = []  # drawn ahead, one per window (offsets_per_draw > 1)
        self.generator, self.dtype, self.reuse, self.spread, self.exact = (
            generator,
            dtype,
            reuse,
            spread,
            exact,
        )
        self._pool: torch.Tensor | None = None
        self._pool_origin: torch.Tensor | None = None  # generator state the pool was drawn from
        self._handed_out = 0

    def state_dict(self) -> dict:
        """Where the pool stands, without the pool itself: the generator state it was drawn from
        (it is drawn again from that on restore), its size, how much of it was handed out, and the
        offsets drawn ahead. A few kB instead of the pool's 16 MiB or more."""
        return {
            "origin": self._pool_origin,
            "size": 0 if self._pool is None else len(self._pool),
            "handed_out": self._handed_out,
            "uniforms": list(self._uniforms),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["origin"] is None:
            self._pool = self._pool_origin = None
        else:
            redraw = torch.Generator(device=self.generator.device)
            redraw.set_state(state["origin"])
            self._pool = torch.randn(state["size"], generator=redraw, device=redraw.device, dtype=self.dtype)
            self._pool_origin = state["origin"]
        self._handed_out = state["handed_out"]
        self._uniforms = list(state["uniforms"])

    def _draw(self, size: int) -> None:
        self._pool_origin = self.generator.get_state()
        self._pool = torch.randn(
            size, generator=self.generator, device=self.generator.device, dtype=self.dtype
        )
        self._handed_out = 0

    def take(self, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
        """A tensor of ``shape`` of N(0, 1) numbers (a view into the pool: read it, do not write it)."""
        n = 1
        for s in shape:
            n *= s
        if self.exact:
            return torch.randn(
                shape, generator=self.generator, device=self.generator.device, dtype=self.dtype
            )
        need = max(MIN_POOL, self.spread * n)
        if self._pool is None or len(self._pool) < need or self._handed_out >= self.reuse * len(self._pool):
            self._draw(max(need, 0 if self._pool is None else len(self._pool)))
        offset = self._offset(n)
        self._handed_out += n
        return self._pool[offset : offset + n].view(shape)

    def _offset(self, n: int) -> int:
        """A uniformly random start for a window of ``n`` numbers."""
        if self.offsets_per_draw == 1:
            return int(
                torch.randint(
                    0, len(self._pool) - n + 1, (1,), generator=self.generator, device=self.generator.device
                )
            )
        # One draw of many uniforms instead of a draw (and a device sync) per window; float64 keeps
        # the rounding of u * count far below one position for any pool that fits in memory.
        if not self._uniforms:
            gen = self.generator
            draws = torch.rand(self.offsets_per_draw, generator=gen, dtype=torch.float64, device=gen.device)
            self._uniforms = draws.tolist()[::-1]
        return int(self._uniforms.pop() * (len(self._pool) - n + 1))
