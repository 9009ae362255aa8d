"""Study 4: noise-based local learning, every neuron perturbed by its own stochastic MTJ.

Koenders et al., Phys. Rev. Applied 23, 054035 (2025); see the study's page in the docs
(docs/studies/danp.md).

Every experiment trains, on the same data, initial weights and minibatch order, one network per
variant, epoch by epoch side by side:

* ``danp``: DANP with the configured noise (default: the authors' simulated sMTJ noise);
* ``np``: the same without decorrelation (plain node perturbation);
* ``gaussian``: DANP with Gaussian noise (``compare.gaussian``);
* ``bp``: backprop on the same network (Adam at ``train.bp_lr``; decorrelation frozen at I, as in
  the authors' BP runs).

Experiments:

* ``mnist-danp``: the authors' configuration exactly: 784 -> 3 x 500 LeakyReLU(0.01) -> 10, batch
  64, Adam lr 4.8828e-5, decorrelation lr 1.9073e-7, their simulated sMTJ noise, 20 epochs, MNIST's
  standard 60k train / 10k test, pixels / 255 normalised (0.1307, 0.3081)
  (:mod:`~spinlearn.experiments.danp_data`). ``test_accuracy`` and ``train_accuracy`` (a full pass
  over the training set) are evaluated with the noise on, as their code does;
  ``test_accuracy_clean`` beside them; ``train_samples`` says how many images trained. Over seeds,
  ``*_min`` and ``*_max`` beside the mean (their figure's band).
* ``cifar10-danp``, ``cifar100-danp``: their CIFAR configurations (3072 -> 3 x 500 -> 10 / 100,
  batch 64, random crop + flip, their per-dataset learning rates: ``CIFAR10``, ``CIFAR100`` below)
  on the user's CIFAR in ``data.dir``; 20 epochs [I] (their sweeps run up to 2500).
* ``mnist-danp-tuned``: our schedule for DANP with sMTJ noise (see ``TUNED`` below for what and why).
* ``digits-danp``: the same on scikit-learn's 8x8 digits (quick).
* ``smtj-small-network``: Iris, 4 -> 16 -> 3, every perturbation drawn from four simulated sMTJ
  devices (Neel-Arrhenius physics of :mod:`spinlearn.devices.smtj`). Our own design [I]: the paper
  shows learning in a small network of physical sMTJs [C], but its size, number of devices and data
  are not public; its threshold is ours.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spinlearn import plots
from spinlearn._fields import Validated, param
from spinlearn.checkpoint import Snapshot
from spinlearn.config import batch_size_param, epochs_param
from spinlearn.experiments import danp_data
from spinlearn.experiments.common import restore_kept
from spinlearn.experiments.danp_data import DANPData
from spinlearn.experiments.registry import RunContext, SeedResult, Target, family, threshold
from spinlearn.learning import danp
from spinlearn.learning.danp_noise import NoiseConfig, layer_sources
from spinlearn.training import lr_at

PAPER = "Koenders et al., Phys. Rev. Applied 23, 054035 (2025); their code, measured on a 2-core CPU"
VARIANT_LABELS = {
    "danp": "DANP (configured noise)",
    "np": "NP (no decorrelation)",
    "gaussian": "DANP (Gaussian noise)",
    "bp": "backprop",
}


@dataclass(frozen=True)
class DANPTrainConfig(Validated):
    """Optimisation schedule (Adam on W, b; SGD at rule.decor_lr on the decorrelation)."""

    epochs: int = epochs_param(20)
    batch_size: int = batch_size_param(64)
    lr: float = param(danp.AUTHORS_LR, "Adam learning rate of the node-perturbation networks", gt=0, le=1)
    lr_decay: str = param(
        "none", "schedule of lr: none or cosine (to lr * lr_final)", choices=("none", "cosine")
    )
    lr_final: float = param(0.1, "final lr / initial lr for the cosine schedule", gt=0, le=1)
    bp_lr: float = param(1e-3, "Adam learning rate of the backprop baseline (same schedule)", gt=0, le=1)


@dataclass(frozen=True)
class ModelConfig(Validated):
    hidden: tuple[int, ...] = param((500, 500, 500), "hidden layer widths", ge=1, le=100_000, min_len=1)


@dataclass(frozen=True)
class CompareConfig(Validated):
    """Variants trained beside the configured DANP network in the same run."""

    np: bool = param(True, "plain node perturbation (no decorrelation), same noise")
    gaussian: bool = param(True, "DANP with Gaussian noise (sigma 0.0125)")
    bp: bool = param(True, "backprop on the same network")


@dataclass(frozen=True)
class DANPExperimentConfig:
    data: DANPData = dataclasses.field(default_factory=DANPData)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    rule: danp.DANPConfig = dataclasses.field(default_factory=danp.DANPConfig)
    device: NoiseConfig = dataclasses.field(default_factory=NoiseConfig)  # the sMTJ noise devices
    train: DANPTrainConfig = dataclasses.field(default_factory=DANPTrainConfig)
    compare: CompareConfig = dataclasses.field(default_factory=CompareConfig)


@dataclass
class Variant:
    """One network and the rule that trains it."""

    name: str
    net: danp.DANPNetwork
    optimizers: list[torch.optim.Optimizer]
    backprop: bool = False

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if self.backprop:
            loss = danp.backprop_gradients(self.net, x, y)
        else:
            loss = danp.danp_step(self.net, x, y).loss
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def set_lr(self, lr: float) -> None:
        for group in self.optimizers[0].param_groups:  # Adam on W, b; the decorrelation keeps its rate
            group["lr"] = lr


def _variants(cfg: DANPExperimentConfig, sizes: list[int], ctx: RunContext) -> list[Variant]:
    """Every variant starts from the same initial weights (the same init seed)."""
    init_seed = int(torch.randint(2**62, (1,), generator=ctx.cpu_generator))
    specs = [("danp", cfg.rule, cfg.device, False)]
    if cfg.compare.np:
        specs.append(("np", dataclasses.replace(cfg.rule, variant="np"), cfg.device, False))
    if cfg.compare.gaussian:
        specs.append(("gaussian", cfg.rule, NoiseConfig(kind="gaussian"), False))
    if cfg.compare.bp:
        specs.append(("bp", dataclasses.replace(cfg.rule, variant="np"), NoiseConfig(kind="gaussian"), True))
    variants = []
    for name, rule, noise, backprop in specs:
        init = torch.Generator().manual_seed(init_seed)
        net = danp.DANPNetwork(sizes, init, rule, noise, device=ctx.device)
        # noise from the run's generator, each variant its own stream
        net.noise_sources = layer_sources(sizes[1:], ctx.generator, noise)
        lr = cfg.train.bp_lr if backprop else cfg.train.lr
        variants.append(Variant(name, net, danp.make_optimizers(net, lr=lr), backprop))
    return variants


def run(cfg: DANPExperimentConfig, ctx: RunContext) -> SeedResult:
    d = danp_data.load(cfg.data, ctx.seed, ctx.device, ctx.out_dir)
    feed, (x_test, y_test) = d.train, d.test
    sizes = [d.features, *cfg.model.hidden, d.classes]
    variants = _variants(cfg, sizes, ctx)
    history: list[dict] = []
    batch = cfg.train.batch_size
    state: dict = {"history": history}
    for v in variants:
        state[f"{v.name}.net"] = v.net
        state.update({f"{v.name}.optimizer{k}": opt for k, opt in enumerate(v.optimizers)})
        state.update({f"{v.name}.noise{k}": src for k, src in enumerate(v.net.noise_sources)})
    lead = variants[0]  # the DANP network: its test accuracy is the run's, its state is kept
    snapshot = _noise_snapshot(lead, ctx)
    for epoch in ctx.checkpoint.epochs("train", cfg.train.epochs, state):
        order = torch.randperm(len(feed), generator=ctx.cpu_generator).to(feed.y.device)
        # every variant sees the same augmented images: one seed per epoch, a fresh generator each
        seed = int(torch.randint(2**62, (1,), generator=ctx.cpu_generator)) if feed.augments else 0
        record: dict = {"epoch": epoch + 1}
        for v in variants:
            v.set_lr(lr_at(epoch, cfg.train, cfg.train.bp_lr if v.backprop else cfg.train.lr))
            losses = []
            images = torch.Generator().manual_seed(seed)
            for start in range(0, len(feed), batch):
                losses.append(v.step(*feed.batch(order[start : start + batch], images)))
            prefix = "" if v.name == "danp" else f"{v.name}_"
            if v is lead:
                snapshot.take()  # what its noisy score below draws from
            record[f"{prefix}train_loss"] = float(np.mean(losses))
            record[f"{prefix}test_accuracy"] = danp.accuracy(v.net, x_test, y_test, noisy=not v.backprop)
            if not v.backprop:
                record[f"{prefix}test_accuracy_clean"] = danp.accuracy(v.net, x_test, y_test, noisy=False)
            record[f"{prefix}train_accuracy"] = danp_data.accuracy(
                v.net, feed, noisy=not v.backprop, generator=torch.Generator().manual_seed(seed + 1)
            )
        history.append(record)
        ctx.on_epoch(record)
    metrics = {k: v for k, v in history[-1].items() if k != "epoch"}
    metrics["train_samples"] = len(feed)
    trace = variants[0].net.noise_sources[0](400)[:, :3].T.cpu().numpy()  # 400 samples of 3 nodes
    artifacts = {"noise_trace": trace, "noise_kind": cfg.device.kind}
    return SeedResult(metrics, history, artifacts, model=lead.net, model_context=snapshot.states)


def _noise_snapshot(variant: Variant, ctx: RunContext) -> Snapshot:
    """The noise sources of ``variant`` and the run generator they draw from."""
    sources = {f"noise{k}": src for k, src in enumerate(variant.net.noise_sources)}
    return Snapshot(generator=ctx.generator, **sources)


def evaluate(cfg: DANPExperimentConfig, ctx: RunContext, saved: dict):
    """The seed's DANP network rebuilt and restored; its noisy test accuracy (the authors' figure)."""
    d = danp_data.load(cfg.data, ctx.seed, ctx.device)
    x_test, y_test = d.test
    lead = _variants(cfg, [d.features, *cfg.model.hidden, d.classes], ctx)[0]
    restore_kept(lead.net, saved, _noise_snapshot(lead, ctx))
    return lead.net, lambda: {"test_accuracy": danp.accuracy(lead.net, x_test, y_test, noisy=True)}


def plot(results: list[SeedResult], cfg: DANPExperimentConfig, out: Path) -> list[Path]:
    histories = [r.history for r in results]
    names = [n for n in VARIANT_LABELS if f"{'' if n == 'danp' else n + '_'}test_accuracy" in histories[0][0]]
    runs = {}
    for name in names:
        key = "test_accuracy" if name == "danp" else f"{name}_test_accuracy"
        label = f"DANP ({cfg.device.kind} noise)" if name == "danp" else VARIANT_LABELS[name]
        runs[label] = [[{"test_accuracy": r[key]} for r in h] for h in histories]
    art = results[0].artifacts
    return [
        plots.compare_curves(runs, out / "learning_curves.png"),
        plots.noise_trace(art["noise_trace"], art["noise_kind"], out / "noise_trace.png"),
    ]


def _base(**sections) -> DANPExperimentConfig:
    cfg = DANPExperimentConfig()
    return dataclasses.replace(
        cfg, **{name: dataclasses.replace(getattr(cfg, name), **values) for name, values in sections.items()}
    )


def _cifar(dataset: str, rates: dict) -> DANPExperimentConfig:
    return _base(data={"dataset": dataset, "augment": True}, **rates)


#: Our DANP schedule (mnist-danp-tuned): see the README for the sweep that chose it.
TUNED = {
    "train": {"epochs": 50, "batch_size": 256, "lr": 1e-3, "lr_decay": "cosine", "lr_final": 0.05},
    "rule": {"decor_lr": 1e-5},
}
QUICK_MNIST = {"data.train_subset": 5_000, "train.epochs": 1, "compare.gaussian": False}
#: The authors' CIFAR runs [C] (conf/runs/NP_SIM_*.yaml, NP_MTJ_*.yaml, BP_*.yaml): Adam lr for the
#: sMTJ-noise networks (simulated and measured alike on CIFAR-10; the simulated noise's on CIFAR-100),
#: their decorrelation rate, and the backprop baseline's rate.
CIFAR10 = {"train": {"lr": 2.4414e-5, "bp_lr": 6.1035e-6}, "rule": {"decor_lr": 1.9073e-7}}
CIFAR100 = {"train": {"lr": 2.4414e-5, "bp_lr": 1.2207e-5}, "rule": {"decor_lr": 9.5367e-8}}

experiment = family(config_cls=DANPExperimentConfig, run=run, plot=plot, evaluate=evaluate)
experiment(
    "mnist-danp",
    "MNIST 3x500, the authors' DANP configuration with their sMTJ noise; NP, Gaussian, BP beside",
    targets=(
        Target("test_accuracy_mean", 0.912, PAPER + ": DANP, sMTJ noise, 20 epochs"),
        Target("bp_test_accuracy_mean", 0.980, PAPER + ": backprop at lr 1e-3, 20 epochs"),
    ),
    quick=QUICK_MNIST,
)
experiment(
    "mnist-danp-tuned",
    "MNIST 3x500, DANP with sMTJ noise on our schedule (batch 256, Adam 1e-3 cosine, decor 1e-5)",
    base_config=lambda: _base(compare={"gaussian": False}, **TUNED),
    targets=(threshold("test_accuracy_mean", 0.96, "DANP with sMTJ noise"),),
    quick=QUICK_MNIST,
)
experiment(
    "cifar10-danp",
    "CIFAR-10 from data.dir, 3072 -> 3x500, the authors' DANP configuration with their sMTJ noise and "
    "augmentation; NP, Gaussian, BP beside",
    base_config=lambda: _cifar("cifar10", CIFAR10),
)
experiment(
    "cifar100-danp",
    "CIFAR-100 (fine labels) from data.dir, 3072 -> 3x500 -> 100, the authors' DANP configuration with "
    "their simulated sMTJ noise and augmentation; NP, Gaussian, BP beside",
    base_config=lambda: _cifar("cifar100", CIFAR100),
)
experiment(
    "digits-danp",
    "8x8 digits, 64 -> 3x100 -> 10, DANP with sMTJ noise; NP, Gaussian, BP beside (quick)",
    base_config=lambda: _base(
        data={"dataset": "digits"},
        model={"hidden": (100, 100, 100)},
        train={"epochs": 30, "batch_size": 32, "lr": 1e-2, "lr_decay": "cosine"},
    ),
    quick={"train.epochs": 10},
)
experiment(
    "smtj-small-network",
    "Iris 4 -> 16 -> 3, every perturbation from 4 simulated sMTJ devices (our own design [I])",
    base_config=lambda: _base(
        data={"dataset": "iris"},
        model={"hidden": (16,)},
        device={"kind": "smtj_device", "devices": 4},
        train={"epochs": 60, "batch_size": 8, "lr": 1e-2, "lr_decay": "cosine", "bp_lr": 1e-2},
        compare={"gaussian": False},
    ),
    targets=(threshold("test_accuracy_mean", 0.90, "our own small sMTJ network on Iris"),),
    seeds=5,
    quick_seeds=2,
    quick={"train.epochs": 20},
)
