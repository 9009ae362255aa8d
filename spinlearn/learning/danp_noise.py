r"""The noise sources of DANP: what each layer's nodes receive, one source per layer.

Study 4 (Koenders et al., Phys. Rev. Applied 23, 054035 (2025); see the study's page in the docs,
docs/studies/danp.md). A source is a callable ``source(n_rows) -> (n_rows, width)`` whose
successive rows are successive samples in time; :data:`NOISE_SOURCES` builds one per kind from a
:class:`NoiseConfig`. The rule that learns from them is in :mod:`spinlearn.learning.danp`.

Where these differ from the authors' code
-----------------------------------------
* ``bernoulli`` follows the authors' ``Bernoulli``: :math:`\sigma \cdot \{0, 1\}` with p = 1/2 (mean
  :math:`\sigma/2`), not :math:`\pm\sigma`; their ``CentredBernoulli`` is ``centred_bernoulli``,
  :math:`\sigma (\{0, 1\} - 1/2)`. Their ``n_sources``, ``p_skew``, ``offset`` and ``clean_pass``
  options (all at their neutral values in the paper's runs) are not offered.
* ``trace``: the authors stream one trace through all layers, row-major (neighbouring nodes of a
  sample read neighbouring trace samples, 5 us apart): ``trace_mode = "shared_stream"``
  (:class:`SharedTrace`, :func:`layer_sources`). The default ``per_node`` gives each layer its own
  :class:`~spinlearn.devices.smtj_noise.TraceNoise`, each node reading the trace from its own random
  offset, rows in time order. Same marginal statistics, less correlation between nodes.
* ``smtj``: :class:`~spinlearn.devices.smtj_noise.TelegraphNoise` with
  :data:`~spinlearn.devices.smtj_noise.AUTHORS_NOISE` per layer,
  as their ``simulatedMTJNoise``; the 2B rows of a step are successive samples in time (their two
  draws of B), the telegraph state persisting across steps and evaluations alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from spinlearn._fields import Validated, param
from spinlearn.devices.smtj_noise import AUTHORS_NOISE, TelegraphNoise, TraceNoise, load_trace
from spinlearn.errors import ConfigError

NOISE_KINDS = ("gaussian", "bernoulli", "centred_bernoulli", "smtj", "smtj_device", "trace")
#: Noise scale per kind when ``NoiseConfig.sigma`` is null: the authors' runs use 1 for device noise
#: (sMTJ, simulated or measured) and 0.0125 for Bernoulli noise [C]; Gaussian takes the same [I].
TRACE_MODES = ("per_node", "shared_stream")
DEFAULT_SIGMA = {
    "gaussian": 0.0125,
    "bernoulli": 0.0125,
    "centred_bernoulli": 0.0125,
    "smtj": 1.0,
    "smtj_device": 1.0,
    "trace": 1.0,
}


@dataclass(frozen=True)
class NoiseConfig(Validated):
    """The noise each layer's nodes receive (one source per layer)."""

    kind: str = param(
        "smtj",
        "gaussian (sigma N(0,1)), bernoulli (sigma {0,1}, the authors'), centred_bernoulli "
        "(sigma ({0,1} - 1/2)), smtj (the authors' simulated sMTJ telegraph noise), smtj_device (a few "
        "simulated sMTJ devices, Neel-Arrhenius physics), trace (a measured trace)",
        choices=NOISE_KINDS,
    )
    sigma: float | None = param(
        None,
        "scale multiplying every sample; null: 1 for smtj/trace (the authors' device runs), "
        "0.0125 for gaussian/bernoulli (the authors' Bernoulli runs)",
        ge=0,
        le=1e6,
    )
    trace_path: str | None = param(
        None, "kind trace: CSV/parquet file or directory of chunks (column trace_column), in volts"
    )
    trace_column: str = param("V", "kind trace: the column holding the voltage")
    trace_mode: str = param(
        "per_node",
        "kind trace: per_node (each layer its own stream, each node reading the trace from its own random "
        "offset) or shared_stream (the authors' code: one stream from the trace's first sample through "
        "every layer, row-major, so consecutive nodes, passes and layers read consecutive samples)",
        choices=TRACE_MODES,
    )
    devices: int = param(
        4,
        "kind smtj_device: simulated sMTJs (devices.smtj physics) whose samples feed every node",
        ge=1,
        le=10**6,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind == "trace" and not self.trace_path:
            raise ConfigError("trace_path = None: noise kind 'trace' needs a trace file or directory")
        if self.trace_mode == "shared_stream" and self.kind != "trace":
            raise ConfigError(f"trace_mode = shared_stream is for noise kind trace, not {self.kind}")

    @property
    def scale(self) -> float:
        """``sigma``, or the kind's default when it is null."""
        return DEFAULT_SIGMA[self.kind] if self.sigma is None else self.sigma


class NoiseSource(Protocol):
    width: int

    def __call__(self, n_rows: int) -> torch.Tensor: ...


class GaussianNoise:
    """:math:`\\sigma\\, N(0, 1)`, independent per node and sample."""

    def __init__(self, width: int, generator: torch.Generator, sigma: float, dtype=torch.float32) -> None:
        self.width, self.generator, self.sigma, self.dtype = width, generator, sigma, dtype

    def __call__(self, n_rows: int) -> torch.Tensor:
        g = self.generator
        return self.sigma * torch.randn((n_rows, self.width), generator=g, device=g.device, dtype=self.dtype)

    def state_dict(self) -> dict:
        return {}  # all of its state is its generator's

    def load_state_dict(self, state: dict) -> None:
        pass


class BernoulliNoise:
    """:math:`\\sigma \\cdot \\{0, 1\\}` with p = 1/2 (the authors' ``Bernoulli``), or minus
    :math:`\\sigma/2` when ``centred`` (their ``CentredBernoulli``: :math:`\\pm\\sigma/2`)."""

    def __init__(
        self, width: int, generator: torch.Generator, sigma: float, centred: bool = False, dtype=torch.float32
    ) -> None:
        self.width, self.generator, self.sigma, self.dtype = width, generator, sigma, dtype
        self.shift = 0.5 if centred else 0.0

    def __call__(self, n_rows: int) -> torch.Tensor:
        g = self.generator
        u = torch.rand((n_rows, self.width), generator=g, device=g.device, dtype=self.dtype)
        return self.sigma * ((u < 0.5).to(self.dtype) - self.shift)

    state_dict, load_state_dict = GaussianNoise.state_dict, GaussianNoise.load_state_dict


class SMTJNoise:
    """The authors' simulated sMTJ noise times ``sigma``: each node its own telegraph state, which
    persists across calls (:class:`~spinlearn.devices.smtj_noise.TelegraphNoise`, :data:`AUTHORS_NOISE`)."""

    def __init__(
        self, width: int, generator: torch.Generator, sigma: float = 1.0, dtype=torch.float32
    ) -> None:
        self.width, self.sigma = width, sigma
        self.telegraph = TelegraphNoise(width, generator, AUTHORS_NOISE, dtype)

    def __call__(self, n_rows: int) -> torch.Tensor:
        noise = self.telegraph.sample(n_rows)
        return noise if self.sigma == 1.0 else self.sigma * noise

    def state_dict(self) -> dict:
        return self.telegraph.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.telegraph.load_state_dict(state)


class TraceLayerNoise:
    """A measured trace times ``sigma`` (:class:`~spinlearn.devices.smtj_noise.TraceNoise`), each node
    reading from its own offset drawn from ``generator``; successive calls continue in time."""

    def __init__(
        self,
        width: int,
        generator: torch.Generator,
        path: str,
        sigma: float = 1.0,
        column: str = "V",
        dtype=torch.float32,
    ) -> None:
        self.width = width
        self.trace = TraceNoise(
            path, width, column=column, scale=sigma, generator=generator, device=generator.device, dtype=dtype
        )

    def __call__(self, n_rows: int) -> torch.Tensor:
        return self.trace.sample(n_rows)

    def state_dict(self) -> dict:
        return self.trace.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.trace.load_state_dict(state)


class DeviceNoise:
    """Read voltages of ``devices`` simulated sMTJs (:mod:`spinlearn.devices.smtj` physics, default
    parameters, device-to-device spread) times ``sigma``, shared by the layer's nodes (our own
    design [I]; how the paper's small hardware network shared its devices is not public): the
    devices' samples, taken in time order, are dealt to the nodes row by
    row (node ``j`` of row ``r`` gets stream sample ``r * width + j``, from device
    ``(r * width + j) % devices``). The devices' states persist across calls."""

    def __init__(
        self,
        width: int,
        generator: torch.Generator,
        sigma: float = 1.0,
        devices: int = 4,
        dtype=torch.float32,
    ) -> None:
        from spinlearn.devices.smtj import SMTJ, SMTJParams

        self.width, self.sigma, self.generator, self.dtype = width, sigma, generator, dtype
        self.model = SMTJ(SMTJParams())
        self.population = self.model.sample(devices, generator, dtype=torch.float64)
        self.state: torch.Tensor | None = None

    def __call__(self, n_rows: int) -> torch.Tensor:
        devices = self.population.size
        steps = -(-n_rows * self.width // devices)
        trace, self.state = self.model.simulate(
            self.population, steps, self.generator, state=self.state, output="voltage"
        )
        stream = trace.reshape(-1)[: n_rows * self.width]
        return (self.sigma * stream.reshape(n_rows, self.width)).to(self.dtype)

    def state_dict(self) -> dict:
        return {"state": self.state}  # the devices' magnetisation states, carried across calls

    def load_state_dict(self, state: dict) -> None:
        saved = state["state"]
        self.state = None if saved is None else saved.to(self.generator.device)


class SharedTrace:
    """One measured trace times ``scale``, read as a single stream from its first sample, wrapping at
    the end (the authors' ``sMTJNoise``: one sampler, one index, for the whole network). Every
    :class:`StreamLayerNoise` built on it takes the next samples."""

    def __init__(self, path: str, column: str = "V", scale: float = 1.0, device=None, dtype=torch.float32):
        self.trace = torch.as_tensor(load_trace(path, column) * scale, dtype=dtype, device=device)
        self.position = 0

    def take(self, n: int) -> torch.Tensor:
        """The next ``n`` samples of the stream (1-D)."""
        index = (self.position + torch.arange(n, device=self.trace.device)) % len(self.trace)
        self.position = (self.position + n) % len(self.trace)
        return self.trace[index]

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


class StreamLayerNoise:
    """A layer's view of a :class:`SharedTrace`: ``n_rows`` rows of ``width`` nodes filled row-major
    from the stream (node ``j`` of row ``r`` gets stream sample ``r * width + j`` of this call)."""

    def __init__(self, stream: SharedTrace, width: int) -> None:
        self.stream, self.width = stream, width

    def __call__(self, n_rows: int) -> torch.Tensor:
        return self.stream.take(n_rows * self.width).view(n_rows, self.width)

    def state_dict(self) -> dict:
        return self.stream.state_dict()  # every layer holds the one stream's position

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)


def layer_sources(
    widths, generator: torch.Generator, config: NoiseConfig, dtype=torch.float32
) -> list[NoiseSource]:
    """One noise source per layer of ``widths``: independent ones from :data:`NOISE_SOURCES`, or
    views of one :class:`SharedTrace` for ``trace_mode = "shared_stream"`` (the network draws layer 1's
    two passes, then layer 2's, ..., so the stream runs through the layers in the authors' order)."""
    if config.kind == "trace" and config.trace_mode == "shared_stream":
        stream = SharedTrace(config.trace_path, config.trace_column, config.scale, generator.device, dtype)
        return [StreamLayerNoise(stream, int(w)) for w in widths]
    return [NOISE_SOURCES[config.kind](int(w), generator, config, dtype=dtype) for w in widths]


def _smtj_device(width, generator, config, dtype=torch.float32):
    return DeviceNoise(width, generator, config.scale, config.devices, dtype)


def _gaussian(width, generator, config, dtype=torch.float32):
    return GaussianNoise(width, generator, config.scale, dtype)


def _bernoulli(width, generator, config, dtype=torch.float32):
    return BernoulliNoise(width, generator, config.scale, centred=False, dtype=dtype)


def _centred_bernoulli(width, generator, config, dtype=torch.float32):
    return BernoulliNoise(width, generator, config.scale, centred=True, dtype=dtype)


def _smtj(width, generator, config, dtype=torch.float32):
    return SMTJNoise(width, generator, config.scale, dtype)


def _trace(width, generator, config, dtype=torch.float32):
    return TraceLayerNoise(width, generator, config.trace_path, config.scale, config.trace_column, dtype)


#: ``name -> factory(width, generator, config: NoiseConfig, dtype=torch.float32) -> NoiseSource``.
NOISE_SOURCES: dict[str, Callable[..., NoiseSource]] = {
    "gaussian": _gaussian,
    "bernoulli": _bernoulli,
    "centred_bernoulli": _centred_bernoulli,
    "smtj": _smtj,
    "smtj_device": _smtj_device,
    "trace": _trace,
}


__all__ = [
    "DEFAULT_SIGMA",
    "NOISE_KINDS",
    "NOISE_SOURCES",
    "TRACE_MODES",
    "BernoulliNoise",
    "DeviceNoise",
    "GaussianNoise",
    "NoiseConfig",
    "NoiseSource",
    "SMTJNoise",
    "SharedTrace",
    "StreamLayerNoise",
    "TraceLayerNoise",
    "layer_sources",
]
