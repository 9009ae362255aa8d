"""Experiment trackers behind one small interface: TensorBoard and MLflow (``--log-to``).

A run logs to each tracker its config as parameters, every epoch's numeric figures (per seed), the
summary metrics, and its plots and run files as artifacts:

- ``tensorboard``: event files in ``OUT/tensorboard`` (``tensorboard --logdir OUT``); scalars
  ``<metric>`` per epoch (``<metric>/seed<S>`` when several seeds run), ``summary/<metric>``, the
  config and ``run.yaml`` as text, the PNG plots as images. Needs the ``[tracking]`` extra.
- ``mlflow``: one MLflow run per spinlearn run, in the experiment named after the spinlearn
  experiment, stored wherever MLflow's own setting points (``MLFLOW_TRACKING_URI``: a server, a
  database; unset: MLflow's default, ``sqlite:///mlflow.db`` in the working directory with MLflow
  3). Metrics are named as for TensorBoard; the config as dotted parameters; the plots and run
  files as artifacts. Needs the ``[tracking]`` extra (mlflow-skinny, sqlalchemy, alembic).

The tracker packages are imported only when a run asks for them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spinlearn.errors import UserInputError
from spinlearn.extras import require

TRACKERS = ("tensorboard", "mlflow")
EXTRA = "tracking"  # the pip extra that installs them
TENSORBOARD = "tensorboard"  # the run directory's folder of TensorBoard event files


def parse_log_to(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` -> ``("tensorboard", "mlflow")``; an unknown name is refused."""
    if not text:
        return ()
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    for name in names:
        if name not in TRACKERS:
            raise UserInputError(f"--log-to {name!r}: trackers are {', '.join(TRACKERS)}")
    return tuple(dict.fromkeys(names))


def numeric(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a record (an epoch's figures or a summary's metrics)."""
    return {
        k: float(v)
        for k, v in record.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def flat_params(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"section.key": "value"}``."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, name + "."))
        else:
            out[name] = str(value)
    return out


class _TensorBoard:
    def __init__(self, out: Path, run: dict[str, Any]) -> None:
        require("tensorboard", EXTRA, "--log-to tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out / TENSORBOARD))
        import yaml

        self.writer.add_text("config", "```\n" + yaml.safe_dump(run["config"], sort_keys=False) + "```")
        meta = {k: v for k, v in run.items() if k != "config"}
        self.writer.add_text("run", "```\n" + yaml.safe_dump(meta, sort_keys=False) + "```")

    def epoch(self, name: str, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"{key}{name}", value, step)

    def summary(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(f"summary/{key}", value, 0)

    def artifact(self, path: Path) -> None:
        if path.suffix == ".png":
            from matplotlib.image import imread

            self.writer.add_image(f"plots/{path.stem}", imread(path)[..., :3], 0, dataformats="HWC")

    def close(self, failed: bool) -> None:
        self.writer.close()


class _MLflow:
    def __init__(self, out: Path, run: dict[str, Any]) -> None:
        self.mlflow = require("mlflow", EXTRA, "--log-to mlflow")
        try:
            self.mlflow.set_experiment(run["experiment"])
        except Exception as exc:  # a store MLflow cannot open: a missing driver, a server down
            raise UserInputError(f"--log-to mlflow: {str(exc).splitlines()[0]}") from None
        self.run = self.mlflow.start_run(run_name=out.resolve().name)
        params = flat_params(run["config"])
        params.update(
            {
                "seed": str(run["seed"]),
                "seeds": str(run["seeds"]),
                "backend": run["backend"],
                "device": run["device"],
                "deterministic": str(run["deterministic"]),
            }
        )
        self.mlflow.log_params(params)
        git = run.get("git") or {}
        self.mlflow.set_tags(
            {"spinlearn.out": str(out.resolve()), "spinlearn.git_commit": git.get("commit", "")}
        )

    def epoch(self, name: str, values: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics({f"{k}{name}": v for k, v in values.items()}, step=step)

    def summary(self, metrics: dict[str, float]) -> None:
        self.mlflow.log_metrics({f"summary/{k}": v for k, v in metrics.items()})

    def artifact(self, path: Path) -> None:
        self.mlflow.log_artifact(str(path))

    def close(self, failed: bool) -> None:
        self.mlflow.end_run("FAILED" if failed else "FINISHED")


_OPENERS = {"tensorboard": _TensorBoard, "mlflow": _MLflow}


class Trackers:
    """The trackers a run logs to (none: every call is a no-op)."""

    def __init__(self, names: Iterable[str], out: Path, run: dict[str, Any], n_seeds: int) -> None:
        self.opened: list[Any] = []
        self.n_seeds = n_seeds
        try:
            for name in parse_log_to(tuple(names)):
                self.opened.append(_OPENERS[name](out, run))
        except BaseException:
            self.close(failed=True)
            raise

    def epoch(self, record: dict[str, Any]) -> None:
        """One epoch's figures (a ``metrics.jsonl`` record: ``seed``, ``epoch`` and numbers)."""
        values = numeric({k: v for k, v in record.items() if k not in ("seed", "epoch")})
        name = f"/seed{record['seed']}" if self.n_seeds > 1 and "seed" in record else ""
        for tracker in self.opened:
            tracker.epoch(name, values, int(record.get("epoch", 0)))

    def finish(self, summary: dict[str, Any], files: Iterable[Path]) -> None:
        metrics = numeric(summary["metrics"])
        for tracker in self.opened:
            tracker.summary(metrics)
            for path in files:
                if path.exists():
                    tracker.artifact(path)

    def close(self, failed: bool = False) -> None:
        while self.opened:
            self.opened.pop().close(failed)
