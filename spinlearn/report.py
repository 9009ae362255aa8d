"""``spinlearn reproduce``: run every experiment that has a target and tabulate paper vs measured."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spinlearn import config as cfgmod
from spinlearn.energy import table_rows
from spinlearn.errors import TrainingDiverged
from spinlearn.experiments.registry import EXPERIMENTS, Experiment, Target
from spinlearn.io import write_text_atomic
from spinlearn.runner import run_experiment


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
        if self.target.met_by(self.mean):
            return "reproduced" if self.target.published else "meets threshold"
        return "below target"

    def cells(self) -> list[str]:
        kind = "paper" if self.target.published else "threshold"
        target = f"{self.target.value:.4g} ({kind})"
        measured = "-" if self.mean is None else f"{self.mean:.4f} ± {self.std:.4f} (n={self.seeds})"
        return [self.experiment, self.target.metric, target, measured, self.verdict]


HEADER = ["experiment", "metric", "paper", "measured", "verdict"]


def experiments_with_targets() -> list[Experiment]:
    return [e for e in EXPERIMENTS.values() if e.targets]


def reproduce(
    out_dir: str | Path, quick: bool = False, device: str = "cpu", quiet: bool = False
) -> list[Row]:
    """Run each targeted experiment into ``out_dir/NAME`` and write ``out_dir/report.md``."""
    out = Path(out_dir)
    rows: list[Row] = []
    sections: list[str] = []
    for exp in experiments_with_targets():
        config = cfgmod.build(exp.config_cls, exp.default_config(), overrides=exp.quick if quick else None)
        seeds = (exp.quick_seeds or exp.seeds) if quick else exp.seeds
        try:
            summary = run_experiment(exp, config, out / exp.name, 0, seeds, device, quiet)
        except TrainingDiverged as exc:  # one failed experiment must not cost the whole report
            rows += [Row(exp.name, t, None, None, seeds, failed=str(exc)) for t in exp.targets]
            sections.append(f"### {exp.name}\n\nFailed: {exc}\n")
            continue
        metrics = summary["metrics"]
        for target in exp.targets:
            std_name = target.metric.removesuffix("_mean") + "_std"
            rows.append(Row(exp.name, target, metrics.get(target.metric), metrics.get(std_name, 0.0), seeds))
        images = "\n".join(f"![{p}]({exp.name}/{p})" for p in summary["plots"])
        if "energy" in summary:
            images = energy_markdown(summary["energy"]) + "\n" + images
        sources = "; ".join(t.source for t in exp.targets)
        sections.append(
            f"### {exp.name}\n\n{exp.summary}. Target source: {sources}. "
            f"Runtime {summary['runtime_s']:.1f} s on {summary['device']}.\n\n{images}\n"
        )
    write_text_atomic(out / "report.md", markdown(rows, quick, sections))
    return rows


def energy_markdown(energy: dict[str, float]) -> str:
    lines = ["| energy | value |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in table_rows(energy)]
    return "\n".join(lines) + "\n"


def markdown(rows: list[Row], quick: bool, sections: list[str]) -> str:
    mode = "quick (fewer epochs/seeds; indicative only)" if quick else "full"
    lines = [
        "# spinlearn reproduction report",
        "",
        f"Mode: **{mode}**. Backend: simulated. Paper values are targets; measured values are what",
        "this run produced (mean ± sample std over seeds).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines) + "\n\n" + "\n".join(sections)
