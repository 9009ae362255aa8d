"""The experiment registry: every study registers named experiments here; the CLI finds them by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from spinlearn.checkpoint import Checkpoint
from spinlearn.errors import UserInputError


@dataclass(frozen=True)
class Target:
    """A published (or acceptance) figure that ``reproduce`` compares a metric against.

    ``value`` None: a metric reported without a figure to compare it with (verdict "no target").
    ``reading``: which figure of the source, or which reading of it, the target checks (the
    verdict names it). ``backends``: the backends (``hardware.BACKENDS`` names) whose runs the
    figure judges, e.g. a simulation figure for ``simulated`` and a device-in-the-loop one for
    ``visa``; None: every backend.
    """

    metric: str
    value: float | None
    source: str
    published: bool = True  # False: an acceptance threshold of ours, not a paper's number
    higher_is_better: bool = True
    reading: str = ""
    backends: tuple[str, ...] | None = None

    def met_by(self, measured: float) -> bool:
        if self.value is None:
            raise ValueError(f"{self.metric} has no target value to meet")
        return measured >= self.value if self.higher_is_better else measured <= self.value

    def judges(self, backend: str) -> bool:
        """Whether this figure applies to runs on ``backend``."""
        return self.backends is None or backend in self.backends


def threshold(metric: str, value: float, why: str = "", *, higher_is_better: bool = True) -> Target:
    """An acceptance threshold of ours, not a paper's figure; ``why`` says what it stands for."""
    source = f"acceptance threshold of ours ({why})" if why else "acceptance threshold of ours"
    return Target(metric, value, source, published=False, higher_is_better=higher_is_better)


def no_target(metric: str, why: str) -> Target:
    """A metric ``reproduce`` reports although no published figure exists to compare it with."""
    return Target(metric, None, why, published=False)


@dataclass
class SeedResult:
    """What one seed of an experiment produced."""

    metrics: dict[str, float]
    history: list[dict] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)  # kept in memory for plots
    energy: dict[str, float] | None = None  # from energy.summarise, when the run measured it
    timings: dict[str, float] = field(default_factory=dict)  # wall-clock figures: vary run to run
    #: The trained model whose ``test_accuracy`` the metrics report (kept in the run directory) and
    #: the state of the objects behind it (its backend) as they stood before that evaluation.
    model: Any = None
    model_context: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    """What an experiment's ``run`` gets besides its config: seed, device, generators, progress,
    and where its devices are (``backend``: a name of ``hardware.BACKENDS``; ``resource`` and
    ``visa_library`` for an instrument). Backends made for the run are kept in ``backends``: the
    runner reads their description and instrument figures, and closes them. Every training loop
    takes its epochs from ``checkpoint`` (:meth:`spinlearn.checkpoint.Checkpoint.epochs`), which
    saves and, on ``--resume``, restores its state; the run's two generators are part of it."""

    seed: int
    device: torch.device
    out_dir: Path
    on_epoch: Callable[[dict], None] = lambda record: None
    backend: str = "simulated"
    resource: str | None = None
    visa_library: str = "@py"
    backends: list[Any] = field(default_factory=list)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)

    def __post_init__(self) -> None:
        # Devices and noise draw from `generator` (on the run device); data splits and minibatch
        # order from `cpu_generator`, so a CPU run and a GPU run see the same data order.
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.cpu_generator = torch.Generator().manual_seed(self.seed)
        self.checkpoint.common.update(
            {"run.generator": self.generator, "run.cpu_generator": self.cpu_generator}
        )


@dataclass(frozen=True)
class Experiment:
    """A named, runnable experiment."""

    name: str
    summary: str
    config_cls: type
    run: Callable[[Any, RunContext], SeedResult]
    targets: tuple[Target, ...] = ()
    base_config: Callable[[], Any] | None = None  # defaults differing from config_cls()
    quick: dict[str, Any] = field(default_factory=dict)  # overrides for `reproduce --quick`
    seeds: int = 1  # seeds `reproduce` runs
    quick_seeds: int | None = None
    epochs_of: Callable[[Any], int] = lambda cfg: cfg.train.epochs  # for the progress bar
    plot: Callable[[list[SeedResult], Any, Path], list[Path]] | None = None
    #: ``evaluate(config, ctx, saved)``: the seed's model rebuilt for ``ctx.seed`` with the state the
    #: runner kept (:mod:`spinlearn.experiments.kept`), and a function scoring it on the test data of
    #: ``config``; returns ``(model, score)``. None: the experiment keeps no model.
    evaluate: Callable[[Any, RunContext, dict], tuple[Any, Callable[[], dict[str, float]]]] | None = None

    def default_config(self) -> Any:
        return self.base_config() if self.base_config else self.config_cls()

    def targets_for(self, backend: str) -> tuple[Target, ...]:
        """The targets that judge a run on ``backend`` (see :attr:`Target.backends`)."""
        return tuple(t for t in self.targets if t.judges(backend))


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    if experiment.name in EXPERIMENTS:
        raise ValueError(f"experiment {experiment.name!r} registered twice")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def family(**shared: Any) -> Callable[..., Experiment]:
    """A function that registers experiments sharing ``shared`` settings (config class, run, plot,
    seeds, ...): ``add(name, summary, **own)``, where ``own`` adds to ``shared`` or overrides it."""

    def add(name: str, summary: str, **own: Any) -> Experiment:
        return register(Experiment(name=name, summary=summary, **{**shared, **own}))

    return add


def get(name: str) -> Experiment:
    """The experiment ``name``: a registered one, one that an installed plug-in registers (the
    ``spinlearn.experiments`` entry points, loaded when ``name`` is not registered yet), or
    ``module:NAME``, an experiment that ``module`` (imported from the current directory or
    ``sys.path``) registers or holds as attribute ``NAME``."""
    from spinlearn.experiments import _plugins  # it imports this module

    if name in EXPERIMENTS:
        return EXPERIMENTS[name]
    if ":" in name:
        return _plugins.from_module(name)
    _plugins.discover()
    try:
        return EXPERIMENTS[name]
    except KeyError:
        known = ", ".join(sorted(EXPERIMENTS))
        raise UserInputError(f"unknown experiment {name!r} (known: {known})") from None


def everything() -> dict[str, Experiment]:
    """Every experiment: the built-in ones and those of the installed plug-ins."""
    from spinlearn.experiments import _plugins

    _plugins.discover()
    return EXPERIMENTS
