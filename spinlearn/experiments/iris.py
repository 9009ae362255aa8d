"""Study 1 on Iris: MTJ neurons trained by analog finite differences.

Pereira et al. 2026, arXiv:2603.03947; see the study's page in the docs (docs/studies/afd.md).

* ``iris-afd``: 4 -> 16 MTJ neurons -> 3, trained by AFD through the backend (paper: 93.3 %, 28/30,
  measured with real devices in the loop).
* ``iris-afd-2h``: two hidden layers of 16 MTJ neurons with an exponentially decaying learning rate.
* ``iris-tanh``: ``iris-afd``'s network and schedule with a digital tanh (the baseline).

Every seed draws its own stratified 80/20 split (30 test samples), devices and initial weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from spinlearn import data, plots
from spinlearn.checkpoint import Snapshot
from spinlearn.config import TrainConfig
from spinlearn.energy import Ledger, summarise
from spinlearn.errors import ConfigError
from spinlearn.experiments.common import (
    ExperimentConfig,
    MLPConfig,
    make_backend,
    mtj_mlp,
    restore_kept,
    sweep_devices,
)
from spinlearn.experiments.registry import RunContext, SeedResult, Target, family
from spinlearn.learning.afd import AFDConfig
from spinlearn.training import accuracy, train_classifier

PAPER = "Pereira et al. 2026, arXiv:2603.03947 (device-in-the-loop, Iris)"
IRIS_CLASSES = 3
IRIS_FEATURES = 4


@dataclass(frozen=True)
class IrisConfig(ExperimentConfig):
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(epochs=60, lr=0.05, batch_size=8)
    )
    afd: AFDConfig = dataclasses.field(default_factory=AFDConfig)
    model: MLPConfig = dataclasses.field(default_factory=MLPConfig)


def _data(cfg: IrisConfig, ctx: RunContext):
    if cfg.data.dir is not None:
        raise ConfigError("data.dir is not used by the Iris experiments (Iris ships with scikit-learn)")
    return data.iris(ctx.seed, cfg.data.test_fraction, ctx.device)


def _model(cfg: IrisConfig, ctx: RunContext, ledger: Ledger):
    """The seed's network and the backend behind its MTJ neurons (None for tanh)."""
    mtj = cfg.model.activation == "mtj"
    backend = make_backend(cfg.device, ctx, ledger=ledger) if mtj else None
    sizes = [IRIS_FEATURES, *cfg.model.hidden, IRIS_CLASSES]
    with ledger.in_phase("calibration"):
        model = mtj_mlp(sizes, cfg.model.activation, backend, cfg.afd, ctx.device, ctx.cpu_generator)
    return model, backend


def run(cfg: IrisConfig, ctx: RunContext) -> SeedResult:
    train, test = _data(cfg, ctx)
    ledger = Ledger(cfg.energy)
    model, backend = _model(cfg, ctx, ledger)
    state = {"backend": backend} if backend is not None else None
    snapshot = Snapshot(backend=backend, generator=ctx.generator)  # what the final score drew from
    history = train_classifier(
        model,
        train,
        test,
        cfg.train,
        ctx.cpu_generator,
        ctx.on_epoch,
        ledger=ledger,
        checkpoint=ctx.checkpoint,
        state=state,
        snapshot=snapshot,
    )
    metrics = {
        "test_accuracy": history[-1]["test_accuracy"],
        "train_accuracy": accuracy(model, *train),
    }
    artifacts = {}
    if backend is not None:
        metrics["device_measurements"] = backend.measurement_count
        artifacts["devices"] = sweep_devices(backend, "hidden0", cfg.model.hidden[0])
    epochs = cfg.train.epochs
    energy = summarise(ledger, model, len(train[0]) * epochs, len(test[0]) * epochs)
    return SeedResult(metrics, history, artifacts, energy, model=model, model_context=snapshot.states)


def evaluate(cfg: IrisConfig, ctx: RunContext, saved: dict):
    """The seed's trained network, rebuilt and restored from ``saved``; scored on its test split."""
    _, test = _data(cfg, ctx)
    model, backend = _model(cfg, ctx, Ledger(cfg.energy))
    restore_kept(model, saved, Snapshot(backend=backend, generator=ctx.generator))
    return model, lambda: {"test_accuracy": accuracy(model, *test)}


def plot(results: list[SeedResult], cfg: IrisConfig, out: Path) -> list[Path]:
    paths = [plots.learning_curves([r.history for r in results], out / "learning_curves.png")]
    if results[0].artifacts.get("devices"):
        paths.append(plots.device_curves(results[0].artifacts["devices"], out / "device_curves.png"))
    return paths


def _config(**model) -> IrisConfig:
    cfg = IrisConfig()
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **model))


#: Every Iris experiment: ten seeds (five with --quick), each its own split, devices and weights.
experiment = family(config_cls=IrisConfig, run=run, plot=plot, evaluate=evaluate, seeds=10, quick_seeds=5)
experiment(
    "iris-afd",
    "Iris, 1 hidden layer of 16 MTJ neurons trained by analog finite differences",
    targets=(Target("test_accuracy_mean", 0.933, PAPER),),
)
experiment(
    "iris-afd-2h",
    "Iris, 2 hidden layers of 16 MTJ neurons, AFD with a decaying learning rate",
    base_config=lambda: dataclasses.replace(
        _config(hidden=(16, 16)),
        train=TrainConfig(epochs=60, lr=0.05, batch_size=8, lr_decay="exponential", lr_final=0.1),
    ),
    targets=(Target("test_accuracy_mean", 0.933, PAPER + "; the paper's 2-layer run"),),
)
experiment(
    "iris-tanh",
    "Iris baseline: iris-afd's network and schedule with a digital tanh",
    base_config=lambda: _config(activation="tanh"),
)
