"""The one rule every stochastic component of spinlearn follows.

A component that draws random numbers (a backend's devices and read noise, a crossbar's devices and
read noise, an optimizer's wall noise, a noise source) takes ``generator=``:

* given, it draws from that generator alone, so a script that passes its own generators everywhere
  is reproducible whatever else it does with torch's random numbers;
* omitted, the component makes a generator of its own when it is built, seeded by one draw from
  torch's default generator. ``torch.manual_seed(s)`` at the top of a script therefore fixes every
  number spinlearn draws, in one process and across processes, while the component's stream stays
  its own: adding a dropout layer or a ``torch.randperm`` later in the script does not shift the
  devices' noise.
"""

from __future__ import annotations

import torch

_SEED_RANGE = 2**62  # what torch.Generator.manual_seed takes, with room to spare


def own_generator(
    generator: torch.Generator | None, device: torch.device | str | None = None
) -> torch.Generator:
    """``generator`` itself, or a new one on ``device`` (default CPU) seeded from torch's default
    generator (module doc)."""
    if generator is not None:
        return generator
    seed = int(torch.randint(_SEED_RANGE, (), dtype=torch.int64))
    return torch.Generator(device=torch.device(device or "cpu")).manual_seed(seed)
