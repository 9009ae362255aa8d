"""SimulatedBackend: the default backend, devices simulated in-process by :mod:`devices.mtj`."""

from __future__ import annotations

from typing import Any

import torch

from spinlearn._random import own_generator
from spinlearn.devices import mtj
from spinlearn.devices.mtj import MTJ, MTJPopulation
from spinlearn.energy import Ledger
from spinlearn.errors import ConfigError
from spinlearn.hardware.profile import DeviceProfile
from spinlearn.noise import GaussianPool


class SimulatedBackend:
    """Neuron/twin MTJ pairs simulated with device-to-device variability and read noise.

    Each twin is a separately sampled instance. With a number ``twin_mismatch`` (default
    ``DEFAULT_TWIN_MISMATCH``) it is drawn around its own neuron with that relative spread, which
    models twins fabricated side by side; with ``None`` it is drawn independently from the same
    distribution as the neurons (spread ``variability``).

    With a fitted ``profile`` (:mod:`.profile`, written by ``spinlearn calibrate``) the devices are
    not drawn: a group of ``n`` gets the fitted parameters of the profile's next ``n`` neuron/twin
    pairs, and the nominal device (the scales, the read noise) is the profile's median fit. This
    closes the sim-to-real loop: a calibrated chip, simulated.

    Every random draw (populations and read noise) comes from ``generator``; without one, from a
    generator of the backend's own seeded by torch's default generator (:mod:`spinlearn._random`).
    ``device`` defaults to ``MTJ()`` (the nominal junction with a 10 % spread).

    ``fast`` (default: on for float32, off for float64) selects how reads are simulated. Fast: each
    group's noise-free curves are tabulated (:class:`~spinlearn.devices.mtj.CurveTable`, error far
    below the read noise) and the read noise comes in windows of a Gaussian pool drawn from
    ``generator`` (:class:`~spinlearn.noise.GaussianPool`: exact N(0, sigma) marginals, independent
    within a read, pool numbers reused at random offsets across reads). Otherwise every read solves
    :func:`~spinlearn.devices.mtj.voltage` and draws fresh ``torch.randn`` noise: the float64
    reference, exact to rounding. Fast exists because an AFD training step is otherwise dominated
    by the device simulation (``benchmarks/afd_vs_torch.py``).
    """

    def __init__(
        self,
        device: MTJ | None = None,
        generator: torch.Generator | None = None,
        *,
        twin_mismatch: float | None = mtj.DEFAULT_TWIN_MISMATCH,
        dtype: torch.dtype = torch.float32,
        profile: DeviceProfile | None = None,
        fast: bool | None = None,
    ) -> None:
        if twin_mismatch is not None and not twin_mismatch >= 0:
            raise ConfigError(f"twin_mismatch = {twin_mismatch!r}: must be >= 0")
        device = device if device is not None else MTJ()
        generator = own_generator(generator)
        if profile is not None and (not profile.fitted or profile.nominal is None):
            raise ConfigError(
                f"device profile {profile.source} holds no fitted devices "
                "(run `spinlearn calibrate` to fit them)"
            )
        self.profile = profile
        self._next_pair = 0
        if profile is not None:
            device = MTJ(profile.nominal, device.variability)
        self.kind = device
        self.params = device.params
        self.tensor_device = generator.device
        self.generator = generator
        self.twin_mismatch = twin_mismatch
        self.dtype = dtype
        self._groups: dict[str, tuple[MTJPopulation, MTJPopulation]] = {}
        self._pairs: dict[str, MTJPopulation] = {}  # neurons then twins, side by side
        self._reads = 0
        self.fast = dtype == torch.float32 if fast is None else fast
        self._noise = GaussianPool(generator, dtype, reuse=32, exact=not self.fast, offsets_per_draw=256)
        self._tables: dict[str, mtj.CurveTable] = {}  # per group: neuron at I, twin at I + shift
        self.ledger: Ledger | None = None  # energy ledger fed with every read, when set

    @classmethod
    def from_run(cls, device_cfg, ctx, dtype: torch.dtype = torch.float32) -> SimulatedBackend:
        """The backend of a ``spinlearn run`` (the default): ``device`` config section, run generator."""
        profile = DeviceProfile.load(device_cfg.profile) if device_cfg.profile else None
        return cls(
            device_cfg.mtj(),
            ctx.generator,
            twin_mismatch=device_cfg.twin_mismatch,
            dtype=dtype,
            profile=profile,
        )

    def groups(self) -> dict[str, int]:
        return {name: pops[0].size for name, pops in self._groups.items()}

    def allocate(self, group: str, n: int) -> None:
        if group in self._groups:
            raise ValueError(f"device group {group!r} is already allocated")
        if self.profile is not None:
            start, device = self._next_pair, self.tensor_device
            neurons = self.profile.population(start, n, False, self.dtype, device)
            twins = self.profile.population(start, n, True, self.dtype, device)
            self._next_pair += n
        else:
            neurons, twins = self._draw(n)
        self._place(group, neurons, twins)

    def _place(self, group: str, neurons: MTJPopulation, twins: MTJPopulation) -> None:
        self._groups[group] = (neurons, twins)
        self._pairs[group] = MTJPopulation(*(torch.cat(pair) for pair in zip(neurons, twins, strict=True)))
        self._tables.pop(group, None)

    def _draw(self, n: int) -> tuple[MTJPopulation, MTJPopulation]:
        neurons = self.kind.sample(n, self.generator, self.dtype)
        if self.twin_mismatch is None:
            twins = self.kind.sample(n, self.generator, self.dtype)
        else:
            twins = mtj.perturb(neurons, self.twin_mismatch, self.params.is_a, self.generator)
        return neurons, twins

    def set_population(self, group: str, neurons: MTJPopulation, twins: MTJPopulation) -> None:
        """Put other devices behind an allocated ``group`` (a saved chip restored): same size, its
        tabulated curves dropped."""
        size = self.population(group).size
        for pop in (neurons, twins):
            if pop.size != size:
                raise ConfigError(
                    f"device group {group!r} holds {size} devices, the new population {pop.size}"
                )
        neurons, twins = (
            MTJPopulation(*(t.to(self.tensor_device, self.dtype) for t in pop)) for pop in (neurons, twins)
        )
        self._place(group, neurons, twins)

    def population(self, group: str, twin: bool = False) -> MTJPopulation:
        """The simulated instances behind ``group`` (simulator only: for reference computations)."""
        try:
            return self._groups[group][1 if twin else 0]
        except KeyError:
            raise KeyError(f"device group {group!r} was never allocated") from None

    def read(self, group: str, current_a: torch.Tensor, *, twin: bool = False) -> torch.Tensor:
        pop = self.population(group, twin)
        if not self.fast:
            return self._measure(pop, current_a)
        # Tables are built by read_pair (training); reads before (calibration) or of twins at I
        # when they are tabulated at I + dI (plots) are rare and solve exactly.
        table = self._tables.get(group)
        if table is None or (twin and table.shifts_a[1] != 0.0):
            v = mtj.voltage(current_a, pop)
        else:
            v = table(current_a, slice(1, 2) if twin else slice(0, 1))[0]
        return self._noisy(current_a, v)

    def read_pair(
        self, group: str, current_a: torch.Tensor, delta_i_a: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.population(group)  # raises for an unknown group
        if not self.fast:
            # One evaluation over neurons and twins side by side: half the launches of two reads.
            both = torch.cat((current_a, current_a + delta_i_a), dim=-1)
            return self._measure(self._pairs[group], both).tensor_split(2, dim=-1)
        v = self.curve_table(group, delta_i_a)(current_a)  # (2, ..., n): neurons, twins at I + dI
        self._add_noise(v)
        self._book(current_a, v[0])
        self._book(current_a + delta_i_a, v[1])
        return v[0], v[1]

    def curve_table(self, group: str, shift_a: float) -> mtj.CurveTable:
        """The group's tabulated curves, neurons at ``I`` and twins at ``I + shift_a`` (fast reads).

        One table per group (memory): a read_pair with another step replaces it.
        """
        table = self._tables.get(group)
        if table is None or table.shifts_a[1] != shift_a:
            neurons, twins = self._groups[group]
            table = mtj.CurveTable((neurons, twins), (0.0, shift_a), self.dtype)
            self._tables[group] = table
        return table

    def _add_noise(self, v: torch.Tensor) -> None:
        if self.params.read_noise_v > 0:
            v.view(-1).add_(self.noise_window(v.numel()), alpha=self.params.read_noise_v)

    def noise_window(self, numel: int) -> torch.Tensor:
        """``numel`` standard normal numbers for the read noise of fast reads (a read-only view)."""
        return self._noise.take((numel,))

    def book_reads(self, count: int, abs_iv_sum: float) -> None:
        """Count ``count`` reads made outside this class (the fused AFD step) and book their energy:
        ``abs_iv_sum`` is the sum of ``|I V|`` over them (W)."""
        self._reads += count
        if self.ledger is not None:
            self.ledger.device_reads_summed(count, abs_iv_sum)

    def _noisy(self, current_a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Fast path of one read per element: noise added, counted, booked in the ledger."""
        v = v.contiguous()
        self._add_noise(v)
        self._book(current_a, v)
        return v

    def _measure(self, pop: MTJPopulation, current_a: torch.Tensor) -> torch.Tensor:
        """One noisy read per element (exact solve, fresh noise), counted and booked."""
        v = mtj.read(current_a, pop, self.params.read_noise_v, self.generator)
        self._book(current_a, v)
        return v

    def _book(self, current_a: torch.Tensor, v: torch.Tensor) -> None:
        """Count one read per element of ``current_a`` and book them in the energy ledger, if any."""
        self._reads += current_a.numel()
        if self.ledger is not None:
            self.ledger.device_reads(current_a, v)

    @property
    def measurement_count(self) -> int:
        return self._reads

    def state_dict(self) -> dict[str, Any]:
        """What reads change: the read count and the noise pool's position (for checkpoints).
        The devices themselves are drawn again from the seed when a run is set up."""
        return {"reads": self._reads, "noise": self._noise.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._reads = state["reads"]
        self._noise.load_state_dict(state["noise"])

    def describe(self) -> dict[str, Any]:
        described = {
            "kind": "simulated",
            "groups": self.groups(),
        }
        if self.profile is not None:
            return {**described, "profile": self.profile.source, "devices": "fitted (profile)"}
        return {**described, "variability": self.kind.variability, "twin_mismatch": self.twin_mismatch}

    def close(self) -> None:
        self._groups.clear()
        self._pairs.clear()
        self._tables.clear()
