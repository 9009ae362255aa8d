"""Plots, written atomically, each with its data as CSV beside it. Matplotlib runs headless (Agg).

Each plot is saved in the formats of the enclosing :func:`output` (PNG by default; ``--plot-format
png,pdf,svg``) under the name its function is given with each format's suffix, and
``NAME.csv`` holds the numbers drawn (:mod:`spinlearn._plotdata`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from spinlearn._plotdata import figure_csv
from spinlearn.errors import UserInputError
from spinlearn.io import save_figure_atomic, write_text_atomic

FORMATS = ("png", "pdf", "svg")
DPI = 200  # raster resolution of a PNG: sharp at a column's width in print
_formats: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("plot_formats", default=("png",))
_written: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("plots_written", default=None)


def parse_formats(text: str | None) -> tuple[str, ...]:
    """``"png,pdf"`` -> ``("png", "pdf")``; an unknown format is refused in one line."""
    names = tuple(dict.fromkeys(f.strip().lower() for f in (text or "png").split(",") if f.strip()))
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise UserInputError(f"--plot-format {text!r}: formats are {', '.join(FORMATS)} (comma-separated)")
    return names


@contextlib.contextmanager
def output(formats: tuple[str, ...] = ("png",)) -> Iterator[list[Path]]:
    """Plots saved inside are written in ``formats``; yields the list of every file written."""
    written: list[Path] = []
    tokens = _formats.set(tuple(formats)), _written.set(written)
    try:
        yield written
    finally:
        _written.reset(tokens[1])
        _formats.reset(tokens[0])


@functools.cache
def _pyplot():
    """matplotlib, headless, imported on first use (it costs a second of CLI start-up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Write ``fig`` in every format of the current :func:`output` and its data as CSV; returns the
    path of the first format's file."""
    path = Path(path)
    files = [save_figure_atomic(fig, path.with_suffix(f".{fmt}"), DPI, fmt) for fmt in _formats.get()]
    files.append(write_text_atomic(path.with_suffix(".csv"), figure_csv(fig)))
    _pyplot().close(fig)
    written = _written.get()
    if written is not None:
        written += files
    return files[0]


def learning_curves(histories: list[list[dict]], path: Path, title: str = "") -> Path:
    """Mean +/- std over seeds of the training loss and the test accuracy per epoch."""
    fig, (ax_loss, ax_acc) = _pyplot().subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in (
        (ax_loss, "train_loss", "training loss"),
        (ax_acc, "test_accuracy", "test accuracy"),
    ):
        length = min(len(h) for h in histories)
        values = np.array([[r[key] for r in h[:length]] for h in histories])
        epochs = np.arange(1, length + 1)
        mean, std = values.mean(0), values.std(0)
        ax.plot(epochs, mean, color="C0")
        ax.fill_between(epochs, mean - std, mean + std, color="C0", alpha=0.25, lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.subplots_adjust(wspace=0.3)
    fig.suptitle(title or f"learning curves ({len(histories)} seed(s), mean ± std)")
    return _save(fig, path)


def device_curves(sweep: dict, path: Path) -> Path:
    """Measured V(I) of sampled neuron devices (solid) and their twins (dashed)."""
    fig, ax = _pyplot().subplots(figsize=(5, 3.6))
    current_ua = np.asarray(sweep["current_a"]) * 1e6
    for k, (v, vt) in enumerate(zip(sweep["neuron_v"], sweep["twin_v"], strict=True)):
        ax.plot(current_ua, v, color=f"C{k % 10}", lw=1)
        ax.plot(current_ua, vt, color=f"C{k % 10}", lw=1, ls="--")
    ax.set_xlabel("current I (µA)")
    ax.set_ylabel("measured voltage V (V)")
    ax.set_title("MTJ neurons (solid) and twins (dashed)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def gradcheck(history: list[dict], path: Path) -> Path:
    """1 - cosine(AFD, exact) vs dI, log-log: noise regime on the left, truncation on the right."""
    fig, ax = _pyplot().subplots(figsize=(5.5, 3.8))
    delta_i = np.array([r["delta_i_a"] for r in history])
    labels = {
        "ideal": "ideal devices",
        "device": "variability + noise",
        "independent": "independent twins",
    }
    for case, label in labels.items():
        gap = np.clip(1 - np.array([r[f"cosine_{case}"] for r in history]), 1e-16, None)
        ax.loglog(delta_i, gap, marker="o", ms=3, label=label)
    ax.axhline(1e-3, color="grey", ls=":", label="cosine = 0.999")
    ax.set_xlabel("finite-difference step dI (A)")
    ax.set_ylabel("1 - cosine(AFD, exact)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def compare_curves(runs: dict[str, list[list[dict]]], path: Path, key: str = "test_accuracy") -> Path:
    """``key`` per epoch for several variants (label -> per-seed histories), mean ± std over seeds."""
    fig, ax = _pyplot().subplots(figsize=(5.5, 3.6))
    for k, (label, histories) in enumerate(runs.items()):
        length = min(len(h) for h in histories)
        values = np.array([[r[key] for r in h[:length]] for h in histories])
        epochs = np.arange(1, length + 1)
        mean, std = values.mean(0), values.std(0)
        ax.plot(epochs, mean, color=f"C{k}", label=label)
        ax.fill_between(epochs, mean - std, mean + std, color=f"C{k}", alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key.replace("_", " "))
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str = "") -> Path:
    """Confusion matrix (rows: true class, columns: predicted), counts annotated."""
    classes = int(max(y_true.max(), y_pred.max())) + 1
    matrix = np.zeros((classes, classes), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    fig, ax = _pyplot().subplots(figsize=(5, 4.4))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for i in range(classes):
        for j in range(classes):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_title(title or "confusion matrix (test set)")
    return _save(fig, path)


def energy_bars(energy: dict[str, float], breakdown: dict[str, float], path: Path) -> Path:
    """Stacked bar: training energy of the device run by category, beside the digital baseline."""
    fig, ax = _pyplot().subplots(figsize=(5, 3.6))
    bottom = 0.0
    for k, (category, joules) in enumerate(sorted(breakdown.items())):
        ax.bar("device run", joules, bottom=bottom, color=f"C{k}", label=category)
        bottom += joules
    ax.bar("digital baseline", energy["digital_baseline_train_j"], color="grey", label="digital backprop")
    ax.set_ylabel("training energy (J)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


# --- Hopfield -------------------------------------------------------------------------------------


def hopfield_recalls(art: dict, shape: tuple[int, int], path: Path) -> Path:
    """Rows: stored patterns, one probe of each, and what every rule recalled from it; and overlaps."""
    rows = {"stored": art["patterns"], "probe": art["probes"], **art["recalls"]}
    count = len(art["patterns"])
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), count + 1, figsize=(1.1 * (count + 1) + 2, 1.4 * len(rows)))
    for r, (label, states) in enumerate(rows.items()):
        for c in range(count):
            ax = axes[r, c]
            ax.imshow(np.asarray(states[c]).reshape(shape), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
        axes[r, count].axis("off")
    grid = fig.add_subplot(1, count + 1, count + 1)
    overlaps = np.asarray(art["overlaps"])
    grid.imshow(overlaps, cmap="viridis", vmin=-1, vmax=1)
    letters = list(art["letters"])
    grid.set_xticks(range(count), letters, fontsize=7)
    grid.set_yticks(range(count), letters, fontsize=7)
    for i in range(count):
        for j in range(count):
            grid.text(j, i, f"{overlaps[i, j]:.2f}", ha="center", va="center", fontsize=5, color="w")
    grid.set_title("pairwise overlap", fontsize=8)
    fig.suptitle("stored letters, a probe of each, and the recalls per rule", fontsize=9)
    return _save(fig, path)


def conductance_snapshots(snapshots: dict, g0_s: float, path: Path) -> Path:
    """The conductance matrix G - G0 (µS) as heatmaps at a few epochs of training."""
    epochs = sorted(snapshots)
    shown = sorted({epochs[0], epochs[min(1, len(epochs) - 1)], epochs[len(epochs) // 2], epochs[-1]})
    mats = [(np.asarray(snapshots[e]) - g0_s) * 1e6 for e in shown]
    for m in mats:
        np.fill_diagonal(m, 0.0)
    limit = max(float(np.abs(m).max()) for m in mats) or 1.0
    fig, axes = _pyplot().subplots(1, len(shown), figsize=(3 * len(shown), 3))
    for ax, epoch, m in zip(np.atleast_1d(axes), shown, mats, strict=True):
        image = ax.imshow(m, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"epoch {epoch}", fontsize=9)
        ax.set_xlabel("electrode j")
    np.atleast_1d(axes)[0].set_ylabel("electrode i")
    fig.colorbar(image, ax=axes, label="G - G0 (µS)", shrink=0.8)
    return _save(fig, path)


def recall_curve(
    histories: list[list[dict]],
    baselines: dict[str, float],
    target: float,
    path: Path,
    curves: dict[str, str] | None = None,
) -> Path:
    """Texture recall accuracy per epoch (mean ± std over seeds) beside the software rules.

    ``curves`` maps a label to the history key it plots (default: ``recall_accuracy``, "texture film").
    """
    fig, ax = _pyplot().subplots(figsize=(5.5, 3.6))
    length = min(len(h) for h in histories)
    epochs = np.arange(1, length + 1)
    curves = curves or {"texture film": "recall_accuracy"}
    for k, (label, key) in enumerate(curves.items()):
        values = np.array([[r[key] for r in h[:length]] for h in histories])
        mean, std = values.mean(0), values.std(0)
        ax.plot(epochs, mean, marker="o", ms=3, color=f"C{k}", label=label)
        ax.fill_between(epochs, mean - std, mean + std, color=f"C{k}", alpha=0.2, lw=0)
    for k, (rule, value) in enumerate(baselines.items(), start=len(curves)):
        ax.axhline(value, color=f"C{k}", ls="--", label=f"{rule} (software)")
    ax.axhline(target, color="grey", ls=":", label=f"target {target:g}")
    ax.set_xlabel("training epoch")
    ax.set_ylabel("recall accuracy (pixels)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def capacity_curves(history: list[dict], rules: tuple[str, ...], path: Path) -> Path:
    """Mean final overlap vs load alpha = P / N, one panel per N, a line per rule; alpha_c = 0.138."""
    sizes = sorted({r["n"] for r in history})
    fig, axes = _pyplot().subplots(1, len(sizes), figsize=(4 * len(sizes), 3.4), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        rows = [r for r in history if r["n"] == n]
        alpha = [r["alpha"] for r in rows]
        for k, rule in enumerate(rules):
            ax.plot(alpha, [r[f"overlap_{rule}"] for r in rows], marker="o", ms=3, color=f"C{k}", label=rule)
        ax.axvline(0.138, color="grey", ls=":", label="0.138 (Hebbian, N→∞)")
        ax.axhline(0.95, color="grey", ls="--", lw=0.8)
        ax.set_title(f"N = {n}", fontsize=9)
        ax.set_xlabel("load alpha = P / N")
        ax.set_ylabel("mean final overlap")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return _save(fig, path)


def similarity_curves(history: list[dict], rules: tuple[str, ...], path: Path) -> Path:
    """Recall accuracy vs the mean pairwise overlap of the stored patterns, per rule."""
    fig, ax = _pyplot().subplots(figsize=(5.5, 3.6))
    similarity = [r["measured_similarity"] for r in history]
    for k, rule in enumerate(rules):
        ax.plot(
            similarity, [r[f"recall_{rule}"] for r in history], marker="o", ms=3, color=f"C{k}", label=rule
        )
    ax.axhline(0.95, color="grey", ls=":", label="0.95")
    ax.set_xlabel("mean pairwise overlap of the stored patterns")
    ax.set_ylabel("recall accuracy (pixels)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def noise_trace(trace: np.ndarray, kind: str, path: Path) -> Path:
    """Successive noise samples of a few nodes of the first layer (one line per node)."""
    fig, ax = _pyplot().subplots(figsize=(6, 3))
    for k, row in enumerate(np.asarray(trace)):
        ax.plot(np.arange(len(row)), row * 1e3, lw=0.8, color=f"C{k}", label=f"node {k}")
    ax.set_xlabel("sample (time)")
    ax.set_ylabel("perturbation (mV, or mV-equivalent)")
    ax.set_title(f"noise of the first layer's nodes: {kind}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def reliability(probs: dict[str, np.ndarray], labels: np.ndarray, path: Path, bins: int = 15) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, one line per predictor."""
    fig, ax = _pyplot().subplots(figsize=(4.6, 4.2))
    edges = np.linspace(0, 1, bins + 1)
    for k, (label, p) in enumerate(probs.items()):
        confidence, correct = p.max(1), p.argmax(1) == labels
        which = np.minimum((confidence * bins).astype(int), bins - 1)
        filled = [b for b in range(bins) if (which == b).any()]
        conf = [confidence[which == b].mean() for b in filled]
        acc = [correct[which == b].mean() for b in filled]
        ax.plot(conf, acc, "o-", color=f"C{k}", ms=3, label=label)
    ax.plot(edges, edges, "k:", lw=1, label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def bits_sweep(bits: list[int], accuracy: np.ndarray, float_accuracy: np.ndarray, path: Path) -> Path:
    """DW-SGLD test accuracy against update precision (seeds: rows of ``accuracy``); float SGLD as a band."""
    fig, ax = _pyplot().subplots(figsize=(5, 3.6))
    ax.errorbar(bits, accuracy.mean(0), yerr=accuracy.std(0), fmt="o-", capsize=3, label="DW-SGLD")
    mean, std = float_accuracy.mean(), float_accuracy.std()
    ax.axhline(mean, color="C1", label="float SGLD")
    ax.axhspan(mean - max(std, 1e-4), mean + max(std, 1e-4), color="C1", alpha=0.2, lw=0)
    ax.set_xlabel("update precision (bits)")
    ax.set_ylabel("test accuracy")
    ax.set_xticks(bits)
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)
