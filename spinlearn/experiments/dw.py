"""Study 2: domain-wall synapses learning by Langevin dynamics from their own wall motion.

Dalgaty et al. 2023, arXiv:2312.02771; see the study's page in the docs (docs/studies/dw-sgld.md).

Every experiment trains its variants on the same data, initial weights and minibatch order:

* ``dw``: DW-SGLD (:class:`spinlearn.learning.sgld.DWSGLD`): every weight a domain-wall pair,
  programmed by push-pull pulses at ``sgld.bits``; the Langevin noise is the walls' motion;
* ``float_sgld``: floating-point SGLD with software noise, same lr, temperature and schedule;
* ``sgd``: plain SGD at the same lr (``compare.sgd``; on in mnist-dw-sgld and mnist-dw-resnet18).

Experiments:

* ``mnist-dw-sgld``: an MLP (784 -> 256 -> 256 -> 10, ReLU) on MNIST.
* ``dw-bits-sweep``: that MLP with DW-SGLD at each of ``sweep.bits`` and float SGLD.
* ``mnist-dw-resnet18``: ResNet-18 (CIFAR variant) at width 0.25 on a MNIST subset: DW-SGLD at 6
  bits, float SGLD and SGD, with posterior averaging and its uncertainty scores.
* ``cifar10-dw-resnet18``: full-width ResNet-18 on CIFAR-10 from ``data.dir`` (for a GPU).

Accuracy, NLL, Brier score, ECE and the confidence gap (mean confidence minus accuracy, negative
when underconfident; :func:`~spinlearn.metrics.confidence_gap`) are reported for the final
weights (``test_accuracy``, ``*_final``), for one posterior sample (``*_single``: each of the
``posterior.samples`` thinned samples of the chain's last part scored alone, then averaged: what a
chip holding one sample delivers) and for the posterior average of the samples' predictions
(``*_posterior``); a baseline's as ``nll_sgd`` (final weights) and ``nll_sgd_posterior`` (its
samples averaged). ``ood_auroc_<kind>_*``: how well predictive entropy tells the test set from
inputs no class fits (:mod:`spinlearn.experiments.ood`: noise, shapes, rotated, class);
``ood_auroc_posterior_minus_sgd`` and ``_minus_single`` are the posterior's least margin over the
kinds, ``nll_posterior_minus_single`` its NLL less one sample's: what the targets check.
``ece_gap`` is the DW posterior's ECE minus one sample's, with a 95 % paired-bootstrap interval
over the test examples (``ece_gap_low``, ``ece_gap_high``; :func:`~spinlearn.metrics.ece_gap`).
Averaging can only lower confidence, so it tends to improve the ECE of overconfident samples and to
worsen that of underconfident ones: the confidence gap says which case a run is in, and why ECE is
no target.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spinlearn import data, plots
from spinlearn.checkpoint import Snapshot
from spinlearn.energy import Ledger, summarise
from spinlearn.errors import ConfigError, DataError, TrainingDiverged
from spinlearn.experiments import mnist, ood
from spinlearn.experiments.common import make_backend, restore_kept
from spinlearn.experiments.dw_config import (
    CLASSES,
    PAPER,
    CompareConfig,
    DWConfig,
    DWData,
    DWModelConfig,
    DWTrainConfig,
    PosteriorConfig,
    SweepConfig,
)
from spinlearn.experiments.mnist import Tensors
from spinlearn.experiments.registry import RunContext, SeedResult, family, threshold
from spinlearn.hardware.dw_synapses import DWSynapses
from spinlearn.learning.sgld import DWSGLD, SGLD, SGLDConfig
from spinlearn.metrics import brier, confidence_gap, ece, ece_gap, nll, softmax_outputs
from spinlearn.nn.dw import Layers
from spinlearn.nn.mtj_activation import MTJActivation
from spinlearn.nn.resnet import mlp, resnet18
from spinlearn.training import check_finite, lr_at


def load(
    cfg: DWData, seed: int, device: torch.device, out_dir: Path | None = None
) -> tuple[Tensors, tuple[int, ...]]:
    """Normalised, flattened tensors and the shape of one sample (the ResNet unflattens it): a
    square single-channel image, or a flat row for a user's file whose width is not a square."""
    if cfg.dataset == "iris":  # 4 standardised features, 3 classes, a stratified split per seed
        train, test = data.iris(seed, cfg.test_fraction, device)
        return Tensors(train, test, test, 0, 3), (train[0].shape[1],)
    if cfg.dataset != "cifar10":
        fields = ("dir", "dataset", "train_subset", "path", "test_fraction")
        d = mnist.load(mnist.MNISTData(**{f: getattr(cfg, f) for f in fields}), seed, device, None, out_dir)
        return d, (1, d.side, d.side) if d.side else (d.train[0].shape[1],)
    splits = data.cifar10(cfg.dir)
    n = cfg.train_subset or len(splits.x_train)
    mean = splits.x_train[:n].mean(axis=(0, 2, 3), keepdims=True)  # per colour channel
    std = splits.x_train[:n].std(axis=(0, 2, 3), keepdims=True)
    side = data.CIFAR_SIDE
    return mnist.to_tensors(splits, n, mean, std, side, device), (3, side, side)


def build_model(
    cfg: DWConfig, shape: tuple[int, ...], layers: Layers, classes: int = CLASSES, activation=None
) -> nn.Module:
    """The MLP (hidden units from ``activation(width, k)``, ReLU without one) or the ResNet-18."""
    if cfg.model.arch == "mlp":
        sizes = [math.prod(shape), *cfg.model.hidden, classes]
        return nn.Sequential(nn.Flatten(), mlp(sizes, layers, activation))
    if cfg.model.activation != "relu":
        raise ConfigError(
            f"model.activation={cfg.model.activation} is for model.arch=mlp (the ResNet uses ReLU)"
        )
    if len(shape) != 3:
        raise DataError(
            f"data.path {cfg.data.path}: model.arch resnet18 needs square images, and {shape[0]} features "
            "per sample are not one (model.arch mlp takes any width)"
        )
    return nn.Sequential(nn.Unflatten(1, shape), resnet18(layers, classes, shape[0], cfg.model.width))


def _variant_model(cfg: DWConfig, ctx: RunContext, shape, dw: bool, classes: int = CLASSES, ledger=None):
    init = torch.Generator().manual_seed(ctx.seed)  # identical initial weights in every variant
    activation = _activation(cfg, ctx, dw, ledger)
    if not dw:
        return build_model(cfg, shape, Layers(None, init), classes, activation).to(ctx.device)
    devices = torch.Generator(ctx.device).manual_seed(ctx.seed + 7)  # the same chip for every variant
    layers = Layers(cfg.device.domain_wall(), init, devices, cfg.model.weight_range)
    return build_model(cfg, shape, layers, classes, activation).to(ctx.device)


def _activation(cfg: DWConfig, ctx: RunContext, dw: bool, ledger):
    """The MLP's hidden units: MTJ neurons on a backend of the run for the chip's DW variant (their
    float twins get tanh, the digital unit they stand for), else the configured digital one."""
    kind = cfg.model.activation
    if kind == "relu":
        return None
    if kind == "tanh" or not dw:
        return lambda width, k: nn.Tanh()
    backend = make_backend(cfg.neuron, ctx, ledger=ledger)
    return lambda width, k: MTJActivation(width, backend, f"hidden{k}", cfg.afd, device=ctx.device)


def _noise_sources(model: nn.Module, optimizer, ctx: RunContext) -> dict:
    """What the model's noise is drawn from: its DW devices' and the optimizer's generators, and for
    MTJ neurons their backend (read counter, noise pool) and the run generator behind it."""
    found = _generators(model, optimizer)
    backends = {id(m.backend): m.backend for m in model.modules() if isinstance(m, MTJActivation)}
    found.update({f"backend{k}": b for k, b in enumerate(backends.values())})
    if backends:
        found["run_generator"] = ctx.generator
    return found


def _optimizer(kind: str, model: nn.Module, cfg: DWConfig, sgld: SGLDConfig, n_train: int, ctx, ledger):
    noise = torch.Generator(ctx.device).manual_seed(ctx.seed + 11)
    lr = cfg.train.lr
    if kind == "dw":
        return DWSGLD(model.parameters(), lr, sgld, n_train, noise, ledger)
    if kind == "float_sgld":
        return SGLD(model.parameters(), lr, sgld.temperature, n_train, sgld.prior_std, noise)
    return torch.optim.SGD(model.parameters(), lr)


@dataclass
class Trained:
    history: list[dict]
    final: torch.Tensor  # class probabilities of the final weights on the test set
    samples: torch.Tensor  # (samples, n, classes): each kept posterior sample's on the test set
    optimizer: torch.optim.Optimizer
    seconds_per_step: float
    model: nn.Module
    snapshot: dict  # the devices' generators before ``final`` was scored (their read noise)
    ledger: Ledger
    probe_final: torch.Tensor | None = None  # ``final`` and ``samples`` on the out-of-distribution probes
    probe_samples: torch.Tensor | None = None


def train_variant(
    name: str,
    kind: str,
    cfg: DWConfig,
    ctx: RunContext,
    d: Tensors,
    shape,
    sgld: SGLDConfig | None = None,
    probes: torch.Tensor | None = None,
) -> Trained:
    """Train one variant (``kind``: dw, float_sgld or sgd) and score it on the test set, then on
    ``probes`` (out-of-distribution inputs) when given."""
    sgld = sgld or cfg.sgld
    x, y = d.train
    n = len(x)
    ledger = Ledger(cfg.energy)
    model = _variant_model(cfg, ctx, shape, kind == "dw", d.classes, ledger)
    optimizer = _optimizer(kind, model, cfg, sgld, n, ctx, ledger)
    steps_per_epoch = math.ceil(n / cfg.train.batch_size)
    total = steps_per_epoch * cfg.train.epochs
    posterior = cfg.posterior.chain(total)
    order = torch.Generator().manual_seed(ctx.seed + 1)
    x_eval, y_eval = d.test[0][: cfg.data.eval_subset or None], d.test[1][: cfg.data.eval_subset or None]
    history: list[dict] = []
    clock = {"busy_s": 0.0}
    state = {"model": model, "optimizer": optimizer, "order": order, "ledger": ledger, "posterior": posterior}
    noise = {k: v for k, v in _noise_sources(model, optimizer, ctx).items() if k != "run_generator"}
    state.update(history=history, clock=clock, **noise)
    for epoch in ctx.checkpoint.epochs(name, cfg.train.epochs, state):
        step = epoch * steps_per_epoch
        lr = lr_at(epoch, cfg.train)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        perm = torch.randperm(n, generator=order).to(x.device)
        total_loss = torch.zeros((), device=x.device)
        start = time.perf_counter()
        with ledger.in_phase("train"):
            for first in range(0, n, cfg.train.batch_size):
                idx = perm[first : first + cfg.train.batch_size]
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                posterior.observe(model, step)
                total_loss += loss.detach() * len(idx)
        clock["busy_s"] += time.perf_counter() - start
        mean_loss = total_loss / n
        try:
            check_finite(model, epoch + 1, mean_loss)
        except TrainingDiverged as exc:
            raise TrainingDiverged(f"{name}: {exc}") from None
        with ledger.in_phase("evaluation"):
            probs = softmax_outputs(model, x_eval)
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(mean_loss),
            "test_accuracy": float((probs.argmax(1) == y_eval).float().mean()),
        }
        history.append(record)
        ctx.on_epoch({"variant": name, **record})
    snapshot = Snapshot(**_noise_sources(model, optimizer, ctx))
    snapshot.take()
    final = softmax_outputs(model, d.test[0])
    samples = posterior.sample_outputs(model, d.test[0])
    busy = clock["busy_s"] / max(total, 1)
    trained = Trained(history, final, samples, optimizer, busy, model, snapshot.states, ledger)
    if probes is not None:  # after the test set, whose scores then draw the read noise they always did
        trained.probe_final = softmax_outputs(model, probes)
        trained.probe_samples = posterior.sample_outputs(model, probes)
    return trained


def evaluate(cfg: DWConfig, ctx: RunContext, saved: dict):
    """The seed's DW-SGLD network rebuilt on its chip with the kept walls; scored on its test data."""
    d, shape = load(cfg.data, ctx.seed, ctx.device)
    model = _variant_model(cfg, ctx, shape, True, d.classes)
    optimizer = _optimizer("dw", model, cfg, cfg.sgld, len(d.train[0]), ctx, None)
    restore_kept(model, saved, Snapshot(**_noise_sources(model, optimizer, ctx)))
    for layer in model.modules():
        if hasattr(layer, "refresh"):
            layer.refresh()  # the weights as the restored walls read

    def score() -> dict[str, float]:
        probs = softmax_outputs(model, d.test[0])
        return {"test_accuracy": float((probs.argmax(1) == d.test[1]).float().mean())}

    return model, score


def _generators(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Generator]:
    """The generators behind the model's devices (read noise) and the optimizer's noise."""
    found = {id(m.generator): m.generator for m in model.modules() if isinstance(m, DWSynapses)}
    if isinstance(getattr(optimizer, "generator", None), torch.Generator):
        found[id(optimizer.generator)] = optimizer.generator
    return {f"generator{k}": g for k, g in enumerate(found.values())}


def scores(t: Trained, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, NLL, Brier score, ECE and confidence gap (mean confidence minus accuracy) of the
    final weights, of one posterior sample (mean over the samples) and of the posterior average."""

    def acc(p: torch.Tensor, y: torch.Tensor) -> float:
        return float((p.argmax(1) == y).float().mean())

    posterior = t.samples.mean(0)
    out = {}
    named = (
        ("accuracy", acc),
        ("nll", nll),
        ("brier", brier),
        ("ece", ece),
        ("confidence_gap", confidence_gap),
    )
    for name, score in named:
        out[f"{name}_final"] = score(t.final, labels)
        out[f"{name}_single"] = sum(score(p, labels) for p in t.samples) / len(t.samples)
        out[f"{name}_posterior"] = score(posterior, labels)
    return out


def _dw_figures(opt: DWSGLD, steps: int) -> dict[str, float]:
    return {
        "pulses": float(opt.pulses),
        "pulse_energy_j": opt.pulse_energy_j,
        "pulse_energy_per_step_j": opt.pulse_energy_j / max(steps, 1),
        "hot_fraction": opt.hot_fraction,
    }


def _held_out(cfg: DWConfig, ctx: RunContext, d: Tensors, shape, k: int) -> dict[str, float]:
    """Class ``k``'s AUROCs from DW-SGLD (and SGD) trained without it (see ood's docstring)."""
    without = ood.without_class(d, k)
    metrics = {"held_out_class": float(k)}
    for kind in ("dw", "sgd")[: 1 + cfg.compare.sgd]:
        t = train_variant(f"{kind}_without_class_{k}", kind, cfg, ctx, without, shape)
        views = ood.held_out_aurocs(t.final, t.samples, d.test[1], k)
        metrics.update(ood.named({ood.HELD_OUT: views}, "" if kind == "dw" else kind))
    return metrics


def run_compare(
    cfg: DWConfig, ctx: RunContext, loaded: tuple[Tensors, tuple[int, ...]] | None = None
) -> SeedResult:
    """DW-SGLD beside float SGLD (and SGD): mnist-dw-sgld, mnist-dw-resnet18, cifar10-dw-resnet18.
    ``loaded``: the data as :func:`load` returns it, for a caller that trains more on it."""
    d, shape = loaded or load(cfg.data, ctx.seed, ctx.device, ctx.out_dir)
    labels = d.test[1]
    held_out = ood.held_out_class(cfg.ood.held_out_class, ctx.seed, d.classes) if cfg.ood.held_out else None
    probes = ood.probes(d, shape, cfg.ood.size, ctx.seed)
    dw = train_variant("dw", "dw", cfg, ctx, d, shape, probes=probes.inputs)
    s = scores(dw, labels)
    steps = len(dw.history) * math.ceil(len(d.train[0]) / cfg.train.batch_size)
    metrics = {"test_accuracy": s["accuracy_final"], **{k: v for k, v in s.items() if k != "accuracy_final"}}
    gap = ece_gap(dw.samples, labels, generator=torch.Generator().manual_seed(ctx.seed))
    metrics.update(zip(("ece_gap", "ece_gap_low", "ece_gap_high"), gap, strict=True))
    metrics.update(_dw_figures(dw.optimizer, steps))
    generated = ood.generated_aurocs(dw.final, dw.samples, dw.probe_final, dw.probe_samples, probes)
    metrics.update(ood.named(generated))
    timings = {"dw_seconds_per_step": dw.seconds_per_step}
    histories = {f"DW-SGLD ({cfg.sgld.bits} bit)": [dw.history]}
    reliability = {"DW one sample": dw.samples[-1], "DW posterior average": dw.samples.mean(0)}
    for kind, enabled in (("float_sgld", cfg.compare.float_sgld), ("sgd", cfg.compare.sgd)):
        if not enabled:
            continue
        t = train_variant(kind, kind, cfg, ctx, d, shape, probes=probes.inputs)
        other = scores(t, labels)
        for score in ("accuracy", "nll", "brier"):
            metrics[f"{score}_{kind}"] = other[f"{score}_final"]
            metrics[f"{score}_{kind}_posterior"] = other[f"{score}_posterior"]
        generated = ood.generated_aurocs(t.final, t.samples, t.probe_final, t.probe_samples, probes)
        metrics.update(ood.named(generated, kind))
        timings[f"{kind}_seconds_per_step"] = t.seconds_per_step
        for score in ("ece", "confidence_gap"):
            for way in ("single", "posterior"):
                metrics[f"{score}_{kind}_{way}"] = other[f"{score}_{way}"]
        if kind == "float_sgld":
            reliability["float SGLD posterior average"] = t.samples.mean(0)
        histories["float SGLD" if kind == "float_sgld" else "SGD"] = [t.history]
    if held_out is not None:
        metrics.update(_held_out(cfg, ctx, d, shape, held_out))
    metrics.update(ood.margins(metrics, [*probes.kinds, *[ood.HELD_OUT] * cfg.ood.held_out]))
    artifacts = {
        "histories": histories,
        "reliability": {k: v.cpu().numpy() for k, v in reliability.items()},
        "labels": labels.cpu().numpy(),
    }
    energy = None
    if cfg.model.arch == "mlp":  # its baseline counts dense layers; the ResNet's convolutions it does not
        epochs, evaluated = len(dw.history), len(d.test[0][: cfg.data.eval_subset or None])
        energy = summarise(dw.ledger, dw.model, len(d.train[0]) * epochs, evaluated * epochs)
    return SeedResult(
        metrics, dw.history, artifacts, energy, timings, model=dw.model, model_context=dw.snapshot
    )


def run_sweep(cfg: DWConfig, ctx: RunContext) -> SeedResult:
    """DW-SGLD at each of ``sweep.bits`` and float SGLD on one MLP: ``accuracy_bits_<k>``."""
    if not cfg.sweep.bits:
        raise ConfigError("sweep.bits is empty: list the update precisions to sweep, e.g. [2, 4, 6, 8]")
    d, shape = load(cfg.data, ctx.seed, ctx.device, ctx.out_dir)
    labels = d.test[1]
    metrics: dict[str, float] = {}
    histories: dict[str, list] = {}
    history: list[dict] = []
    for bits in cfg.sweep.bits:
        sgld = dataclasses.replace(cfg.sgld, bits=bits)
        t = train_variant(f"bits_{bits}", "dw", cfg, ctx, d, shape, sgld)
        s = scores(t, labels)
        metrics[f"accuracy_bits_{bits}"] = s["accuracy_final"]
        metrics[f"accuracy_bits_{bits}_posterior"] = s["accuracy_posterior"]
        histories[f"DW-SGLD {bits} bit"] = [t.history]
        history = t.history
    t = train_variant("float_sgld", "float_sgld", cfg, ctx, d, shape)
    metrics["accuracy_float_sgld"] = scores(t, labels)["accuracy_final"]
    histories["float SGLD"] = [t.history]
    top = max(cfg.sweep.bits)
    metrics["gap_float_minus_bits_6"] = metrics["accuracy_float_sgld"] - metrics.get(
        "accuracy_bits_6", float("nan")
    )
    metrics[f"gap_bits_{top}_minus_bits_2"] = metrics[f"accuracy_bits_{top}"] - metrics.get(
        "accuracy_bits_2", float("nan")
    )
    return SeedResult(metrics, history, {"histories": histories, "bits": list(cfg.sweep.bits)})


def plot_compare(results: list[SeedResult], cfg: DWConfig, out: Path) -> list[Path]:
    first = results[0].artifacts
    return [
        plots.compare_curves(first["histories"], out / "learning_curves.png"),
        plots.reliability(first["reliability"], first["labels"], out / "reliability.png"),
    ]


def plot_sweep(results: list[SeedResult], cfg: DWConfig, out: Path) -> list[Path]:
    bits = results[0].artifacts["bits"]
    per_seed = np.array([[r.metrics[f"accuracy_bits_{k}"] for k in bits] for r in results])
    floats = np.array([r.metrics["accuracy_float_sgld"] for r in results])
    return [
        plots.bits_sweep(bits, per_seed, floats, out / "accuracy_vs_bits.png"),
        plots.compare_curves(results[0].artifacts["histories"], out / "learning_curves.png"),
    ]


def resnet18_config(width: float, data: DWData, train: DWTrainConfig, **sections) -> DWConfig:
    """The defaults with a ResNet-18 of ``width`` for the model, trained on ``data`` by ``train``."""
    model = DWModelConfig(arch="resnet18", width=width)
    return dataclasses.replace(DWConfig(), model=model, data=data, train=train, **sections)


def compare_epochs(cfg: DWConfig) -> int:
    """Epochs of a comparison run: DW-SGLD's, each enabled baseline's and the held-out-class runs'."""
    held_out = (1 + cfg.compare.sgd) * cfg.ood.held_out
    return cfg.train.epochs * (1 + cfg.compare.float_sgld + cfg.compare.sgd + held_out)


#: What a posterior is for (issue 28): telling inputs no class fits better than one sample and than
#: SGD (the least margin over the OOD kinds; a tie, e.g. both at AUROC 1, counts), and a likelihood
#: no worse than one sample's. Not its ECE: averaging lowers confidence, which worsens the ECE of
#: underconfident samples (metrics.confidence_gap).
POSTERIOR_TARGETS = (
    threshold("ood_auroc_posterior_minus_sgd_mean", 0.0, "posterior OOD AUROC above SGD's, every kind"),
    threshold("ood_auroc_posterior_minus_single_mean", 0.0, "posterior OOD AUROC above one sample's"),
    threshold("nll_posterior_minus_single_mean", 0.0, "NLL posterior <= one sample", higher_is_better=False),
)
WITH_SGD = CompareConfig(sgd=True)  # the targets compare with SGD
MLP_QUICK = {"data.dataset": "digits", "train.epochs": 4, "train.batch_size": 32, "data.eval_subset": 0}
#: DW-SGLD beside its baselines; dw-bits-sweep runs and plots a sweep instead.
experiment = family(
    config_cls=DWConfig, run=run_compare, plot=plot_compare, evaluate=evaluate, epochs_of=compare_epochs
)
experiment(
    "mnist-dw-sgld",
    "MNIST MLP trained by DW-SGLD (wall motion is the Langevin noise), float SGLD and SGD beside it",
    base_config=lambda: dataclasses.replace(DWConfig(), compare=WITH_SGD),
    targets=(threshold("test_accuracy_mean", 0.97, "MLP on MNIST"), *POSTERIOR_TARGETS),
    quick=MLP_QUICK,
)
experiment(
    "dw-bits-sweep",
    "MNIST MLP: DW-SGLD accuracy at 2-8 bit updates against float SGLD",
    base_config=lambda: dataclasses.replace(DWConfig(), sweep=SweepConfig(bits=(2, 3, 4, 5, 6, 7, 8))),
    run=run_sweep,
    evaluate=None,  # one model per bit width: none of them is "the" model
    plot=plot_sweep,
    targets=(
        threshold(
            "gap_float_minus_bits_6_mean",
            0.005,
            f"after {PAPER}: parity with floating point down to 6-7 bit updates",
            higher_is_better=False,
        ),
    ),
    quick={**MLP_QUICK, "sweep.bits": [2, 6, 8]},
    epochs_of=lambda cfg: cfg.train.epochs * (len(cfg.sweep.bits) + 1),
)
experiment(
    "mnist-dw-resnet18",
    "ResNet-18 (width 0.25), MNIST subset: DW-SGLD at 6 bits vs float SGLD and SGD, posterior averaged",
    base_config=lambda: resnet18_config(
        0.25,
        DWData(train_subset=20_000, eval_subset=1000),
        DWTrainConfig(epochs=2, batch_size=32, lr=0.2),
        posterior=PosteriorConfig(samples=4, burn_in=0.7),
        compare=WITH_SGD,
    ),
    targets=(threshold("test_accuracy_mean", 0.98, "ResNet-18 on MNIST"), *POSTERIOR_TARGETS),
    quick={
        "data.dataset": "digits",
        "model.width": 0.125,
        "train.epochs": 1,
        "train.batch_size": 64,
        "data.eval_subset": 0,
    },
)
experiment(
    "cifar10-dw-resnet18",
    "ResNet-18 (full width) on CIFAR-10 from data.dir: DW-SGLD at 6 bits vs float SGLD (GPU)",
    base_config=lambda: resnet18_config(
        1.0, DWData(dataset="cifar10", eval_subset=2000), DWTrainConfig(epochs=30, batch_size=128, lr=0.05)
    ),
)
