"""Study 3: a magnetic-texture Hopfield network that learns by itself.

Niu et al., PNAS 121, e2416294121 (2024); see the study's page in the docs (docs/studies/hopfield.md).

* ``hopfield-35``: 35 electrodes store 5 x 7 letter bitmaps chosen to be highly similar; probes with
  10-20 % of their pixels flipped are recalled with weights read from the film's conductances after
  every epoch. Software rules (Hebbian, Storkey, Oja) on the same patterns and probes beside it.
  The only source of its figure says "95 % after 9 epochs for the outer-product training rule"
  [S], so ``epochs_to_target`` is reported for the film and for the Hebbian (outer-product) rule
  side by side, each with its own target, whose verdict names the reading it checks.
* ``hopfield-capacity``: random patterns at N in {100, 400, 1000}, a load sweep alpha = P / N, the
  mean final overlap per rule; capacity = the largest alpha on the grid with overlap >= 0.95.
* ``hopfield-similar``: recall vs the pairwise similarity of the stored patterns, per rule.

The film's law is ``device.law`` (:mod:`spinlearn.devices.texture`: ``delta``, the projection rule,
or ``oja``, Oja's form). Every experiment reports both laws: ``hopfield-35`` trains a second film,
the same as-grown film under the other law, and reports ``recall_accuracy_texture_LAW``,
``exact_recall_rate_texture_LAW`` and ``epochs_to_target_texture_LAW`` for both (the unsuffixed
film metrics, energy and conductance plots are those of ``device.law``); the sweeps' ``rules``
name the films ``texture_delta`` and ``texture_oja`` (``texture``: the film under ``device.law``).

Training the film is only voltage pulses (:func:`learning.hopfield.train_texture`); every recall
reads the conductance matrix through the film's read path (noise included).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path

import torch

from spinlearn import data, plots
from spinlearn._fields import Validated, param
from spinlearn.devices.texture import LAWS, TextureFilm, TextureParams
from spinlearn.energy import EnergyConfig, digital_delta_rule_train_j
from spinlearn.errors import ConfigError
from spinlearn.experiments.registry import Experiment, RunContext, SeedResult, Target, register, threshold
from spinlearn.learning import hopfield

PAPER = "Niu et al., PNAS 121, e2416294121 (2024): 35 nodes, ~95 % recall after ~9 epochs [S]"
SOFTWARE_RULES = ("hebbian", "storkey", "oja")
#: The rules the sweeps compare by default: the software ones and the film under each law.
SWEEP_RULES = (*SOFTWARE_RULES, *(f"texture_{law}" for law in LAWS))


@dataclass(frozen=True)
class HopfieldTrainConfig(Validated):
    """How long the film is trained (and the software Oja baseline with it)."""

    epochs: int = param(10, "epochs; each applies every pattern once, in order", ge=1, le=100_000)
    oja_lr: float = param(0.3, "learning rate of the software Oja baseline", gt=0, le=2)
    target: float = param(0.95, "recall accuracy that defines epochs_to_target", gt=0, le=1)


@dataclass(frozen=True)
class RecallConfig(Validated):
    """The sign dynamics used to recall."""

    mode: str = param("async", "async (one neuron at a time) or sync", choices=hopfield.RECALL_MODES)
    max_sweeps: int = param(50, "sweeps before recall gives up", ge=1, le=100_000)


@dataclass(frozen=True)
class ProbeConfig(Validated):
    """Corrupted versions of the stored patterns that recall starts from."""

    per_pattern: int = param(20, "probes per stored pattern", ge=1, le=100_000)
    flip_min: float = param(0.1, "smallest fraction of flipped pixels", ge=0, le=1)
    flip_max: float = param(0.2, "largest fraction of flipped pixels", ge=0, le=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.flip_min > self.flip_max:
            raise ConfigError(f"flip_min = {self.flip_min} exceeds flip_max = {self.flip_max}")


@dataclass(frozen=True)
class LettersConfig(Validated):
    """Which 5 x 7 letters are stored."""

    letters: str = param(
        "BEFPR", "letters A-Z to store; the default five share 67 % of their pixels on average"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        data.letter_patterns(self.letters)  # refuses unknown or repeated letters at construction


@dataclass(frozen=True)
class FilmConfig:
    """The sections of every Hopfield experiment: the film's devices and how long it is trained."""

    device: TextureParams = dataclasses.field(default_factory=TextureParams)
    train: HopfieldTrainConfig = dataclasses.field(default_factory=HopfieldTrainConfig)


@dataclass(frozen=True)
class Hopfield35Config(FilmConfig):
    data: LettersConfig = dataclasses.field(default_factory=LettersConfig)
    probes: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    recall: RecallConfig = dataclasses.field(default_factory=RecallConfig)
    energy: EnergyConfig = dataclasses.field(default_factory=EnergyConfig)


def _accuracy(weights: torch.Tensor, probes, targets, recall_cfg: RecallConfig, generator, mode=None):
    result = hopfield.recall(weights, probes, mode or recall_cfg.mode, generator, recall_cfg.max_sweeps)
    right = result.states == targets
    return float(right.float().mean()), float(right.all(1).float().mean()), result.states


def _epochs_to(accuracies: list[float], target: float, epochs: int) -> float:
    """The first epoch (1-based) whose recall accuracy reaches ``target``; ``epochs + 1`` if none does."""
    return float(next((k for k, a in enumerate(accuracies, start=1) if a >= target), epochs + 1))


def _film_with_law(film: TextureFilm, law: str, generator: torch.Generator) -> TextureFilm:
    """The same as-grown film (couplings and texture) under ``law``: the laws compared on one film."""
    params = dataclasses.replace(film.params, law=law)
    twin = TextureFilm(params, film.n, generator, film.w.device, film.w.dtype)
    twin.coupling, twin.w = film.coupling.clone(), film.w.clone()
    return twin


def run_35(cfg: Hopfield35Config, ctx: RunContext) -> SeedResult:
    patterns = data.letter_patterns(cfg.data.letters, ctx.device)
    n = patterns.shape[1]
    overlaps = hopfield.overlap(patterns[:, None, :], patterns[None, :, :])
    pairs = [float(overlaps[i, j]) for i, j in itertools.combinations(range(len(patterns)), 2)]
    probes, index = hopfield.flip_probes(
        patterns, cfg.probes.per_pattern, cfg.probes.flip_min, cfg.probes.flip_max, ctx.cpu_generator
    )
    targets = patterns[index]
    law = cfg.device.law
    film = TextureFilm(cfg.device, n, ctx.generator, ctx.device)
    others = {other: _film_with_law(film, other, ctx.generator) for other in LAWS if other != law}
    snapshots = {0: film.conductance().cpu()}
    history: list[dict] = []

    def evaluate(epoch: int) -> None:
        weights = film.read_weights()
        accuracy, exact, _ = _accuracy(weights, probes, targets, cfg.recall, ctx.cpu_generator)
        record = {"epoch": epoch, "recall_accuracy": accuracy, "exact_recall_rate": exact}
        record[f"recall_accuracy_texture_{law}"] = accuracy
        for other, other_film in others.items():
            other_film.apply(patterns)  # the same epoch's pulses, on the other law's film
            record[f"recall_accuracy_texture_{other}"] = _accuracy(
                other_film.read_weights(), probes, targets, cfg.recall, ctx.cpu_generator
            )[0]
        record["write_energy_j"] = film.write_energy_j
        history.append(record)
        snapshots[epoch] = film.conductance().cpu()
        ctx.on_epoch(record)

    state = {"film": film, "history": history, "snapshots": snapshots}
    state |= {f"film_{other}": other_film for other, other_film in others.items()}
    hopfield.train_texture(film, patterns, ctx.checkpoint.epochs("train", cfg.train.epochs, state), evaluate)
    weights = film.read_weights()
    accuracy, exact, recalled = _accuracy(weights, probes, targets, cfg.recall, ctx.cpu_generator)
    metrics = {
        "recall_accuracy": accuracy,
        "exact_recall_rate": exact,
        "epochs_to_target": _epochs_to(
            [r["recall_accuracy"] for r in history], cfg.train.target, cfg.train.epochs
        ),
        "recall_accuracy_other_mode": _accuracy(
            weights, probes, targets, cfg.recall, ctx.cpu_generator, _other(cfg.recall.mode)
        )[0],
        "pattern_overlap_mean": sum(pairs) / max(len(pairs), 1),
        "pattern_overlap_max": max(pairs, default=1.0),
        "write_energy_j": film.write_energy_j,
        "write_pulses": film.writes,
        "read_energy_j": film.read_energy_j,
    }
    metrics |= {f"recall_accuracy_texture_{law}": accuracy, f"exact_recall_rate_texture_{law}": exact}
    for other, other_film in others.items():
        metrics[f"recall_accuracy_texture_{other}"], metrics[f"exact_recall_rate_texture_{other}"], _ = (
            _accuracy(other_film.read_weights(), probes, targets, cfg.recall, ctx.cpu_generator)
        )
    for each in LAWS:
        accuracies = [r[f"recall_accuracy_texture_{each}"] for r in history]
        metrics[f"epochs_to_target_texture_{each}"] = _epochs_to(
            accuracies, cfg.train.target, cfg.train.epochs
        )
    recalls = {"texture": recalled}
    for rule in SOFTWARE_RULES:
        w = hopfield.software_weights(rule, patterns, cfg.train.epochs, cfg.train.oja_lr)
        metrics[f"recall_accuracy_{rule}"], metrics[f"exact_recall_rate_{rule}"], recalls[rule] = _accuracy(
            w, probes, targets, cfg.recall, ctx.cpu_generator
        )
    # The outer product applied once per epoch is k times one epoch's after k epochs, and sign
    # recall does not see the scale: every epoch recalls as the first did.
    hebbian_epochs = [metrics["recall_accuracy_hebbian"]] * cfg.train.epochs
    metrics["epochs_to_target_hebbian"] = _epochs_to(hebbian_epochs, cfg.train.target, cfg.train.epochs)
    first = [int((index == p).nonzero()[0]) for p in range(len(patterns))]  # one probe per pattern to show
    artifacts = {
        "patterns": patterns.cpu(),
        "probes": probes[first].cpu(),
        "recalls": {rule: states[first].cpu() for rule, states in recalls.items()},
        "overlaps": overlaps.cpu(),
        "letters": cfg.data.letters,
        "snapshots": snapshots,
        "g0_s": cfg.device.g0_s,
    }
    return SeedResult(metrics, history, artifacts, _energy(film, cfg.energy))


def _energy(film: TextureFilm, config: EnergyConfig) -> dict[str, float]:
    """The film's training energy (Joule heat of the pulses) beside the same learning done digitally."""
    one_read_j = film.read_energy_j / max(film.reads // (film.n * (film.n - 1) // 2), 1)
    return {
        "train_j": film.write_energy_j,
        "train_texture_pulse_j": film.write_energy_j,
        "train_texture_pulse_count": film.writes,
        "calibration_j": 0.0,
        "inference_j": one_read_j,
        "digital_baseline_train_j": digital_delta_rule_train_j(film.n, film.writes, config),
        "device_read_time_s": film.writes * film.params.pulse_s,
    }


def _other(mode: str) -> str:
    return "sync" if mode == "async" else "async"


def plot_35(results: list[SeedResult], cfg: Hopfield35Config, out: Path) -> list[Path]:
    art = results[0].artifacts
    baselines = {
        rule: sum(r.metrics[f"recall_accuracy_{rule}"] for r in results) / len(results)
        for rule in SOFTWARE_RULES
    }
    return [
        plots.hopfield_recalls(art, data.LETTER_SHAPE, out / "patterns_probes_recalls.png"),
        plots.conductance_snapshots(art["snapshots"], art["g0_s"], out / "conductance.png"),
        plots.recall_curve(
            [r.history for r in results],
            baselines,
            cfg.train.target,
            out / "recall_curve.png",
            {f"texture film, {law} law": f"recall_accuracy_texture_{law}" for law in LAWS},
        ),
    ]


# --- capacity -------------------------------------------------------------------------------------


def check_rules(rules: tuple[str, ...]) -> None:
    unknown = [r for r in rules if r not in hopfield.RULES]
    if unknown:
        raise ConfigError(f"rules = {list(rules)}: unknown {unknown} (known: {', '.join(hopfield.RULES)})")


def _rules_param():
    return param(
        SWEEP_RULES,
        f"rules compared ({', '.join(hopfield.RULES)}; texture: the film under device.law)",
        min_len=1,
    )


@dataclass(frozen=True)
class CapacitySweepConfig(Validated):
    """Network sizes, loads and probes of the capacity sweep."""

    sizes: tuple[int, ...] = param((100, 400, 1000), "numbers of neurons N", ge=2, le=20_000, min_len=1)
    alphas: tuple[float, ...] = param(
        (0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7),
        "loads alpha = P / N, ascending",
        gt=0,
        le=2,
        min_len=1,
    )
    flip: float = param(0.1, "fraction of flipped bits in every probe", ge=0, le=0.5)
    max_probes: int = param(100, "probes per load (one per pattern, the first patterns)", ge=1, le=100_000)
    rules: tuple[str, ...] = _rules_param()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rules(self.rules)
        if list(self.alphas) != sorted(set(self.alphas)):
            raise ConfigError(f"alphas = {list(self.alphas)}: must be ascending without repeats")


@dataclass(frozen=True)
class CapacityConfig(FilmConfig):
    train: HopfieldTrainConfig = dataclasses.field(default_factory=lambda: HopfieldTrainConfig(epochs=20))
    capacity: CapacitySweepConfig = dataclasses.field(default_factory=CapacitySweepConfig)
    recall: RecallConfig = dataclasses.field(default_factory=RecallConfig)


def random_patterns(count: int, n: int, generator: torch.Generator, device) -> torch.Tensor:
    """``count`` independent uniform +-1 patterns of ``n`` bits."""
    bits = torch.rand(count, n, generator=generator) < 0.5
    return torch.where(bits, 1.0, -1.0).to(device)


def rule_weights(rule: str, patterns: torch.Tensor, cfg, ctx: RunContext) -> torch.Tensor:
    """Weights of any rule: the software ones computed, the films' read from a trained film
    (``texture``: under ``device.law``; ``texture_LAW``: under that law)."""
    if not rule.startswith("texture"):
        return hopfield.software_weights(rule, patterns, cfg.train.epochs, cfg.train.oja_lr)
    law = rule.removeprefix("texture").removeprefix("_") or cfg.device.law
    device = dataclasses.replace(cfg.device, law=law)
    film = TextureFilm(device, patterns.shape[1], ctx.generator, ctx.device)
    hopfield.train_texture(film, patterns, cfg.train.epochs)
    return film.read_weights()


def largest_passing(rows: list[dict], x: str, key: str, threshold: float) -> float:
    """Largest ``row[x]`` whose ``row[key]`` reaches ``threshold`` (0 when none does)."""
    return max((r[x] for r in rows if r[key] >= threshold), default=0.0)


def run_capacity(cfg: CapacityConfig, ctx: RunContext) -> SeedResult:
    sweep = cfg.capacity
    history: list[dict] = []
    points = [(n, alpha) for n in sweep.sizes for alpha in sweep.alphas]
    for k in ctx.checkpoint.epochs("points", len(points), {"history": history}):  # a point per "epoch"
        n, alpha = points[k]
        count = max(1, round(alpha * n))
        patterns = random_patterns(count, n, ctx.cpu_generator, ctx.device)
        shown = min(count, sweep.max_probes)
        probes, index = hopfield.flip_probes(patterns[:shown], 1, sweep.flip, sweep.flip, ctx.cpu_generator)
        record: dict = {"n": n, "alpha": alpha, "patterns": count}
        for rule in sweep.rules:
            weights = rule_weights(rule, patterns, cfg, ctx)
            result = hopfield.recall(
                weights, probes, cfg.recall.mode, ctx.cpu_generator, cfg.recall.max_sweeps
            )
            record[f"overlap_{rule}"] = float(hopfield.overlap(result.states, patterns[index]).mean())
        history.append(record)
        ctx.on_epoch(record)
    metrics: dict[str, float] = {}
    for n in sweep.sizes:
        rows = [r for r in history if r["n"] == n]
        for rule in sweep.rules:
            metrics[f"capacity_alpha_{rule}_n{n}"] = largest_passing(rows, "alpha", f"overlap_{rule}", 0.95)
    return SeedResult(metrics, history)


def plot_capacity(results: list[SeedResult], cfg: CapacityConfig, out: Path) -> list[Path]:
    return [plots.capacity_curves(results[0].history, cfg.capacity.rules, out / "capacity.png")]


# --- similarity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimilaritySweepConfig(Validated):
    """Families of patterns drawn around one prototype, with a set pairwise similarity."""

    n_nodes: int = param(100, "neurons N", ge=2, le=20_000)
    n_patterns: int = param(10, "patterns per family", ge=2, le=100_000)
    similarities: tuple[float, ...] = param(
        (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
        "expected pairwise overlaps, ascending",
        ge=0,
        lt=1,
        min_len=1,
    )
    rules: tuple[str, ...] = _rules_param()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rules(self.rules)


@dataclass(frozen=True)
class SimilarityConfig(FilmConfig):
    similar: SimilaritySweepConfig = dataclasses.field(default_factory=SimilaritySweepConfig)
    probes: ProbeConfig = dataclasses.field(default_factory=lambda: ProbeConfig(per_pattern=5, flip_max=0.1))
    recall: RecallConfig = dataclasses.field(default_factory=RecallConfig)


def similar_patterns(
    count: int, n: int, similarity: float, generator: torch.Generator, device
) -> torch.Tensor:
    """Patterns that each flip every bit of a random prototype with probability (1 - sqrt(m)) / 2.

    Two such patterns agree with the prototype independently, so their expected overlap is
    (1 - 2p)^2 = m.
    """
    prototype = random_patterns(1, n, generator, "cpu")
    p = (1 - similarity**0.5) / 2
    flips = torch.rand(count, n, generator=generator) < p
    return (prototype * torch.where(flips, -1.0, 1.0)).to(device)


def _percent(value: float) -> str:
    return f"{round(100 * value):d}"


def run_similar(cfg: SimilarityConfig, ctx: RunContext) -> SeedResult:
    sweep = cfg.similar
    history: list[dict] = []
    points = ctx.checkpoint.epochs("points", len(sweep.similarities), {"history": history})
    for similarity in (sweep.similarities[k] for k in points):  # a point per "epoch"
        patterns = similar_patterns(
            sweep.n_patterns, sweep.n_nodes, similarity, ctx.cpu_generator, ctx.device
        )
        overlaps = hopfield.overlap(patterns[:, None, :], patterns[None, :, :])
        off_diagonal = ~torch.eye(len(patterns), dtype=torch.bool, device=overlaps.device)
        probes, index = hopfield.flip_probes(
            patterns, cfg.probes.per_pattern, cfg.probes.flip_min, cfg.probes.flip_max, ctx.cpu_generator
        )
        record: dict = {"similarity": similarity, "measured_similarity": float(overlaps[off_diagonal].mean())}
        for rule in sweep.rules:
            weights = rule_weights(rule, patterns, cfg, ctx)
            record[f"recall_{rule}"] = _accuracy(
                weights, probes, patterns[index], cfg.recall, ctx.cpu_generator
            )[0]
        history.append(record)
        ctx.on_epoch(record)
    metrics = {
        f"recall_{rule}_sim{_percent(r['similarity'])}": r[f"recall_{rule}"]
        for r in history
        for rule in sweep.rules
    }
    for rule in sweep.rules:
        metrics[f"max_similarity_{rule}"] = largest_passing(
            history, "similarity", f"recall_{rule}", cfg.train.target
        )
    return SeedResult(metrics, history)


def plot_similar(results: list[SeedResult], cfg: SimilarityConfig, out: Path) -> list[Path]:
    return [plots.similarity_curves(results[0].history, cfg.similar.rules, out / "recall_vs_similarity.png")]


# --- registration ---------------------------------------------------------------------------------

for experiment in (
    Experiment(
        name="hopfield-35",
        summary="35-electrode film (delta, Oja laws) learns 5 similar 5x7 letters; vs Hebbian, Storkey, Oja",
        config_cls=Hopfield35Config,
        run=run_35,
        plot=plot_35,
        targets=(
            Target("recall_accuracy_mean", 0.95, PAPER, reading="film reading"),
            Target("epochs_to_target_mean", 9, PAPER, reading="film reading", higher_is_better=False),
            Target("recall_accuracy_hebbian_mean", 0.95, PAPER, reading="outer-product reading"),
            Target(
                "epochs_to_target_hebbian_mean",
                9,
                PAPER,
                reading="outer-product reading",
                higher_is_better=False,
            ),
        ),
        seeds=5,
        quick_seeds=3,
    ),
    Experiment(
        name="hopfield-capacity",
        summary="capacity vs N (100, 400, 1000): overlap vs load per rule, texture beside the baselines",
        config_cls=CapacityConfig,
        run=run_capacity,
        plot=plot_capacity,
        targets=(
            threshold("capacity_alpha_hebbian_n100_mean", 0.08, "finite-size Hebbian band"),
            threshold(
                "capacity_alpha_hebbian_n100_mean", 0.2, "finite-size Hebbian band", higher_is_better=False
            ),
        ),
        epochs_of=lambda cfg: len(cfg.capacity.sizes) * len(cfg.capacity.alphas),
        quick={"capacity.sizes": (100, 200), "capacity.alphas": (0.05, 0.1, 0.15, 0.2, 0.3)},
    ),
    Experiment(
        name="hopfield-similar",
        summary="recall vs similarity of the stored patterns (N=100, 10 patterns), texture vs software rules",
        config_cls=SimilarityConfig,
        run=run_similar,
        plot=plot_similar,
        epochs_of=lambda cfg: len(cfg.similar.similarities),
        quick={"similar.similarities": (0.0, 0.2, 0.4, 0.6, 0.8)},
    ),
):
    register(experiment)
