"""``spinlearn reproduce``: run every experiment that has a target and write the results page.

``OUT/results.md`` holds the table (paper or threshold, measured, verdict per target), each
experiment's metrics, energy and plots, the machine and the commit it ran on; ``OUT/table.md`` holds
the table alone, for the README (``--readme FILE`` puts it between the file's
``<!-- results:begin -->`` and ``<!-- results:end -->`` markers). The full run takes hours on two
cores, so it can be built over several sittings: ``--resume`` keeps every experiment that finished
with the same config and continues an unfinished one from its checkpoints, and ``--only NAMES``
runs just those experiments and keeps the others' rows from the directory as they are.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spinlearn import __version__, provenance
from spinlearn import config as cfgmod
from spinlearn.energy import table_rows
from spinlearn.errors import TrainingDiverged, UserInputError
from spinlearn.experiments.registry import EXPERIMENTS, Experiment, Target
from spinlearn.io import write_text_atomic
from spinlearn.runner import run_experiment

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


@dataclass
class Row:
    experiment: str
    target: Target
    mean: float | None
    std: float | None
    seeds: int
    failed: str | None = None

    @property
    def verdict(self) -> str:
        if self.failed:
            return "failed"
        if self.mean is None:
            return "not measured"
        if self.target.value is None:
            return "no target"
        if self.target.met_by(self.mean):
            verdict = "reproduced" if self.target.published else "meets threshold"
        else:
            verdict = "below target"
        return f"{verdict} ({self.target.reading})" if self.target.reading else verdict

    def cells(self) -> list[str]:
        kind = "paper" if self.target.published else "threshold"
        target = "-" if self.target.value is None else f"{self.target.value:.4g} ({kind})"
        measured = "-" if self.mean is None else f"{self.mean:.4f} ± {self.std:.4f} (n={self.seeds})"
        return [self.experiment, self.target.metric, target, measured, self.verdict]


HEADER = ["experiment", "metric", "paper", "measured", "verdict"]


#: ``reproduce`` runs the simulator, so the targets it checks are those of simulated runs.
BACKEND = "simulated"


def experiments_with_targets() -> list[Experiment]:
    return [e for e in EXPERIMENTS.values() if e.targets_for(BACKEND)]


def _config(exp: Experiment, quick: bool) -> Any:
    return cfgmod.build(exp.config_cls, exp.default_config(), overrides=exp.quick if quick else None)


def _same_config(run_dir: Path, config_text: str) -> bool:
    try:
        return (run_dir / "config.yaml").read_text() == config_text
    except OSError:
        return False


def _finished(run_dir: Path, config_text: str) -> dict[str, Any] | None:
    """The run's summary when ``run_dir`` holds a finished run of exactly this config."""
    if not _same_config(run_dir, config_text):
        return None
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def _check_only(only: list[str] | None) -> set[str] | None:
    if only is None:
        return None
    known = {e.name for e in experiments_with_targets()}
    unknown = sorted(set(only) - known)
    if unknown or not only:
        raise UserInputError(
            f"--only {','.join(only)}: {', '.join(unknown) or 'no names'} "
            f"(experiments with a target: {', '.join(sorted(known))})"
        )
    return set(only)


def reproduce(
    out_dir: str | Path,
    quick: bool = False,
    device: str = "cpu",
    quiet: bool = False,
    resume: bool = False,
    only: list[str] | None = None,
) -> list[Row]:
    """Run each targeted experiment into ``out_dir/NAME`` and write ``results.md`` and ``table.md``.

    Args:
        out_dir: the results directory (one run directory per experiment inside).
        quick: each experiment's ``quick`` overrides and ``quick_seeds``: minutes, indicative only.
        device: ``cpu`` or ``cuda``.
        quiet: no progress bars.
        resume: keep experiments already finished in ``out_dir`` with this config, and continue an
            unfinished one from its checkpoints.
        only: run just these experiments; the others' rows come from ``out_dir`` as they are
            (``not measured`` where it holds no finished run of this mode's config).

    Returns:
        One row per target, in registry order.

    Raises:
        UserInputError: an unknown name in ``only``.
    """
    chosen = _check_only(only)
    out = Path(out_dir)
    rows: list[Row] = []
    sections: list[str] = []
    for exp in experiments_with_targets():
        config = _config(exp, quick)
        seeds = (exp.quick_seeds or exp.seeds) if quick else exp.seeds
        run_dir, config_text = out / exp.name, cfgmod.dump_yaml(config)
        summary = _finished(run_dir, config_text)
        if (chosen is None or exp.name in chosen) and not (resume and summary is not None):
            started = _same_config(run_dir, config_text)  # else it starts afresh
            try:
                summary = run_experiment(  # reproduce owns its directories: it re-runs over them
                    exp, config, run_dir, 0, seeds, device, quiet, resume=resume and started, overwrite=True
                )
            except TrainingDiverged as exc:  # one failed experiment must not cost the whole report
                rows += [
                    Row(exp.name, t, None, None, seeds, failed=str(exc)) for t in exp.targets_for(BACKEND)
                ]
                sections.append(f"### {exp.name}\n\nFailed: {exc}\n")
                continue
        if summary is None:
            rows += [Row(exp.name, t, None, None, seeds) for t in exp.targets_for(BACKEND)]
            continue
        rows += _rows(exp, summary)
        sections.append(_section(exp, summary))
    table = table_markdown(rows)
    write_text_atomic(out / "table.md", table)
    write_text_atomic(out / "results.md", results_markdown(table, quick, sections))
    return rows


def _rows(exp: Experiment, summary: dict[str, Any]) -> list[Row]:
    metrics, seeds = summary["metrics"], len(summary["seeds"])
    rows = []
    for target in exp.targets_for(BACKEND):
        std_name = target.metric.removesuffix("_mean") + "_std"
        rows.append(Row(exp.name, target, metrics.get(target.metric), metrics.get(std_name, 0.0), seeds))
    return rows


def _section(exp: Experiment, summary: dict[str, Any]) -> str:
    metrics = summary["metrics"]
    names = [k.removesuffix("_mean") for k in metrics if k.endswith("_mean")]
    lines = ["| metric | mean | std | min | max |", "|---|---|---|---|---|"]
    lines += [
        f"| {n} | {metrics[n + '_mean']:.6g} | {metrics.get(n + '_std', 0.0):.3g} "
        f"| {_figure(metrics, n + '_min')} | {_figure(metrics, n + '_max')} |"
        for n in names
    ]
    parts = [
        f"### {exp.name}",
        "",
        f"{exp.summary}. Target source: {'; '.join(t.source for t in exp.targets_for(BACKEND))}. "
        f"Seeds {summary['seeds'][0]}..{summary['seeds'][-1]}, {summary['runtime_s']:.0f} s on "
        f"{summary['device']}.",
        "",
        "\n".join(lines),
        "",
    ]
    if "energy" in summary:
        parts += [energy_markdown(summary["energy"])]
    parts += [f"![{p}]({exp.name}/{p})" for p in summary["plots"]]
    return "\n".join(parts) + "\n"


def _figure(metrics: dict[str, Any], name: str) -> str:
    """A seed-range figure, or "-" in a summary written before ranges were aggregated."""
    return f"{metrics[name]:.6g}" if name in metrics else "-"


def energy_markdown(energy: dict[str, float]) -> str:
    lines = ["| energy | value |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in table_rows(energy)]
    return "\n".join(lines) + "\n"


def table_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, str]:
    """Where the results were measured: the code's commit, the CPU and GPU, the library versions."""
    cpu = provenance.cpu_model()
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "spinlearn": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": f"{cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _commit() -> str:
    """The git commit of the source tree (``+ uncommitted changes`` when dirty), if it is a checkout."""
    git = provenance.git_commit()
    if git is None:
        return "unknown (not a git checkout, or git not available)"
    return git["commit"][:12] + (" + uncommitted changes" if git["dirty"] else "")


def results_markdown(table: str, quick: bool, sections: list[str]) -> str:
    mode = "quick (subsets, fewer epochs and seeds; indicative only)" if quick else "full"
    about = "\n".join(f"- {k}: {v}" for k, v in machine().items())
    return (
        "# spinlearn results\n\n"
        f"Generated by `spinlearn reproduce`; mode: **{mode}**. Backend: simulated. Paper values are\n"
        "targets; measured values are what the runs in this directory produced (mean ± sample std\n"
        "over seeds).\n\n"
        f"{about}\n\n{table}\n" + "\n".join(sections)
    )


def readme_block(path: str | Path) -> tuple[str, int, int]:
    """The text of the file at ``path`` and where its results block starts and ends (checked before
    a run of hours, so that a wrong path is one line at once)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserInputError(f"--readme {path}: {exc.strerror or exc}") from None
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        raise UserInputError(f"--readme {path}: no {BEGIN} ... {END} block to fill")
    return text, begin + len(BEGIN), end


def update_readme(path: str | Path, table: str) -> None:
    """Put ``table`` between the results markers of the file at ``path``."""
    text, begin, end = readme_block(path)
    write_text_atomic(path, text[:begin] + "\n" + table + text[end:])
