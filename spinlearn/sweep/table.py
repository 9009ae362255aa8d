"""A sweep's results: one row per point from its trials' run directories, and the files made of
them (``sweep.json``, ``sweep.csv``, ``sweep.md``, a plot per swept key, a heatmap for two keys)."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any

from spinlearn.io import write_json_atomic, write_text_atomic
from spinlearn.plots import _pyplot, _save
from spinlearn.sweep.trial import EARLY, FAILED, FINISHED, trial_status

#: The energy figures of a seed (``spinlearn.energy.summarise``) that a row carries, mean over seeds.
ENERGY_TOTALS = ("train_j", "calibration_j", "inference_j", "digital_baseline_train_j")
STATS = ("mean", "std", "min", "max")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _seed_outcome(trial: Any) -> tuple[str, dict[str, float], dict[str, float], str]:
    """(status, metrics, energy, error) of one trial, read from its run directory."""
    status = trial_status(trial)
    if status == "done":
        summary = _read_json(trial.out / FINISHED)
        metrics = {k: v[0] for k, v in summary.get("per_seed", {}).items() if _is_number(v[0])}
        return status, metrics, summary.get("energy") or {}, ""
    if status == "early_stopped":
        last = _read_json(trial.out / EARLY).get("last_epoch", {})
        return status, {k: v for k, v in last.items() if k != "seed" and _is_number(v)}, {}, ""
    if status == "failed":
        return status, {}, {}, str(_read_json(trial.out / FAILED).get("error", "unknown error"))
    return status, {}, {}, "not run"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,  # sample std, as `run` gives
        "min": min(values),
        "max": max(values),
    }


def rows(trials: list[Any]) -> list[dict[str, Any]]:
    """One row per point, in grid order: the swept values, ``point`` (its directory), ``status``
    (``ok``; ``early_stopped`` when the scheduler stopped a seed; ``failed``; ``incomplete``),
    ``seeds`` (finished), ``early_stopped`` and ``failed`` (counts), the first ``error``, then
    ``<metric>_mean/_std/_min/_max`` over the seeds (an early-stopped seed counts with its last
    epoch's record) and ``energy_<total>`` (mean over finished seeds, joules)."""
    by_point: dict[str, list[Any]] = {}
    for trial in trials:
        by_point.setdefault(trial.point, []).append(trial)
    out = []
    for point, group in by_point.items():
        outcomes = [_seed_outcome(t) for t in group]
        statuses = [o[0] for o in outcomes]
        errors = [o[3] for o in outcomes if o[3] and o[0] != "done"]
        status = "ok"
        for named, seen in (("failed", "failed"), ("incomplete", "pending"), ("early_stopped",) * 2):
            if seen in statuses:
                status = named
                break
        row: dict[str, Any] = {
            **group[0].values,
            "point": point,
            "status": status,
            "seeds": statuses.count("done"),
            "early_stopped": statuses.count("early_stopped"),
            "failed": statuses.count("failed"),
            "error": errors[0] if errors else "",
        }
        names = list(dict.fromkeys(k for o in outcomes for k in o[1]))
        for name in names:
            values = [o[1][name] for o in outcomes if name in o[1]]
            row.update({f"{name}_{stat}": value for stat, value in _stats(values).items()})
        for total in ENERGY_TOTALS:
            values = [o[2][total] for o in outcomes if total in o[2]]
            if values:
                row[f"energy_{total}"] = statistics.fmean(values)
        out.append(row)
    return out


def primary_metric(experiment: Any, table: list[dict[str, Any]], metric: str | None) -> str | None:
    """The metric the plots and the table lead with: ``metric`` when given, else the experiment's
    first target, else ``test_accuracy``, else the first metric of the rows."""
    present = {k[: -len("_mean")] for row in table for k in row if k.endswith("_mean")}
    wanted = [metric] if metric else []
    wanted += [t.metric.removesuffix("_mean") for t in experiment.targets] + ["test_accuracy"]
    found = next((m for m in wanted if m in present), None)
    if found is None and present:
        found = next(k[: -len("_mean")] for row in table for k in row if k.endswith("_mean"))
    return found


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else value


def csv_text(table: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in table for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in table)
    return buffer.getvalue()


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if _is_number(value) else str(value)


def markdown(name: str, grid: dict[str, list], table: list[dict[str, Any]], metric: str | None) -> str:
    """The sweep's table: swept values, status, seeds, and every metric's mean ± std (the lead
    metric with its min and max)."""
    names = list(dict.fromkeys(k[: -len("_mean")] for row in table for k in row if k.endswith("_mean")))
    if metric in names:
        names.remove(metric)
        names.insert(0, metric)
    header = [*grid, "status", "seeds"]
    header += [f"{n} (mean ± std)" for n in names]
    if metric:
        header += [f"{metric} min", f"{metric} max"]
    lines = [
        f"# Sweep of {name}",
        "",
        f"{len(table)} points; mean ± sample std over seeds.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in table:
        cells = [_fmt(row[k]) for k in grid] + [row["status"], str(row["seeds"])]
        for n in names:
            mean = row.get(f"{n}_mean")
            cells.append("" if mean is None else f"{_fmt(mean)} ± {_fmt(row[f'{n}_std'])}")
        if metric:
            cells += [_fmt(row.get(f"{metric}_{s}", "")) for s in ("min", "max")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _axis(values: list[Any]) -> tuple[list[float], list[str] | None]:
    """Positions on the axis: the values themselves when numeric, else 0, 1, ... with labels."""
    if all(_is_number(v) for v in values):
        return [float(v) for v in values], None
    return list(range(len(values))), [json.dumps(v) if not isinstance(v, str) else v for v in values]


def line_plot(grid: dict[str, list], table: list[dict[str, Any]], key: str, metric: str, path: Path) -> Path:
    """``metric`` against ``key``'s values, mean with a band of ± one std over seeds; one line per
    combination of the other swept keys."""
    fig, ax = _pyplot().subplots(figsize=(5.5, 3.8))
    xs, labels = _axis(grid[key])
    others = [k for k in grid if k != key]
    lines: dict[str, list[dict]] = {}
    for row in table:
        lines.setdefault(", ".join(f"{k}={_fmt(row[k])}" for k in others), []).append(row)
    for n, (label, group) in enumerate(lines.items()):
        points = [
            (xs[grid[key].index(r[key])], r[f"{metric}_mean"], r[f"{metric}_std"])
            for r in group
            if f"{metric}_mean" in r
        ]
        if not points:
            continue
        x, mean, std = (list(v) for v in zip(*sorted(points), strict=True))
        color = f"C{n % 10}"
        ax.plot(x, mean, marker="o", ms=3, color=color, label=label or None)
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)
    if labels:
        ax.set_xticks(xs, labels)
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {key} (mean ± std over seeds)", fontsize=10)
    if others and len(lines) <= 10:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def heatmap(grid: dict[str, list], table: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """Mean ``metric`` over the two swept keys, each cell labelled with its value."""
    rows_key, cols_key = list(grid)
    means = [[math.nan] * len(grid[cols_key]) for _ in grid[rows_key]]
    for row in table:
        if f"{metric}_mean" in row:
            i, j = grid[rows_key].index(row[rows_key]), grid[cols_key].index(row[cols_key])
            means[i][j] = row[f"{metric}_mean"]
    fig, ax = _pyplot().subplots(figsize=(1.2 + 0.9 * len(grid[cols_key]), 1.0 + 0.6 * len(grid[rows_key])))
    image = ax.imshow(means, cmap="viridis", aspect="auto")
    for i, line in enumerate(means):
        for j, value in enumerate(line):
            if not math.isnan(value):
                ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(len(grid[cols_key])), [_fmt(v) for v in grid[cols_key]])
    ax.set_yticks(range(len(grid[rows_key])), [_fmt(v) for v in grid[rows_key]])
    ax.set_xlabel(cols_key)
    ax.set_ylabel(rows_key)
    fig.colorbar(image, ax=ax, label=f"{metric} (mean over seeds)")
    return _save(fig, path)


def write(
    out: Path, experiment: Any, grid: dict[str, list], trials: list[Any], metric: str | None, runtime_s: float
) -> list[dict[str, Any]]:
    """Write the sweep's files under ``out``; return its rows."""
    table = rows(trials)
    lead = primary_metric(experiment, table, metric)
    plots: list[Path] = []
    if lead is not None:
        plots = [line_plot(grid, table, key, lead, out / f"sweep_{key}.png") for key in grid]
        if len(grid) == 2:
            plots.append(heatmap(grid, table, lead, out / "sweep_heatmap.png"))
    write_text_atomic(out / "sweep.csv", csv_text(table))
    write_text_atomic(out / "sweep.md", markdown(experiment.name, grid, table, lead))
    record = {
        "experiment": experiment.name,
        "grid": grid,
        "seeds": sorted({t.seed for t in trials}),
        "metric": lead,
        "runtime_s": round(runtime_s, 3),
        "rows": table,
        "trials": [
            {"point": t.point, "seed": t.seed, "status": o[0], "error": o[3], "dir": str(t.out)}
            for t, o in ((t, _seed_outcome(t)) for t in trials)
        ],
        "plots": [p.name for p in plots],
    }
    write_json_atomic(out / "sweep.json", record)
    return table
