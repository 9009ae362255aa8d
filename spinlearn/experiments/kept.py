"""The models a run keeps: ``OUT/models/seed<S>.pt``, re-evaluated later in a fresh process.

Each file holds the seed's final model as tensors (``model.state_dict()``: weights, walls and the
chip's devices and calibration, :mod:`spinlearn.nn.state`) and the state of its backend as it stood
before the final test evaluation (the read counter and the noise pool's position: a few kB), so
that re-evaluating draws the same read noise and gives the same ``test_accuracy`` as
``summary.json``. It loads with ``weights_only=True``; no lookup table or noise pool is stored.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from spinlearn import config as config_mod
from spinlearn.errors import UserInputError
from spinlearn.experiments.registry import RunContext, SeedResult, get
from spinlearn.io import write_bytes_atomic

MODELS = "models"  # the run directory's folder of kept models
FORMAT = 1


def model_path(out: Path, seed: int) -> Path:
    return Path(out) / MODELS / f"seed{seed}.pt"


def save_model(out: Path, seed: int, result: SeedResult) -> Path | None:
    """Write the seed's model, if the experiment returned one (atomically)."""
    if result.model is None:
        return None
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "seed": seed, "model": state, "context": result.model_context}, buffer)
    return write_bytes_atomic(model_path(out, seed), buffer.getvalue())


def load_saved(out: Path, seed: int) -> dict[str, Any]:
    """The kept file of ``seed`` in run directory ``out``, loaded without executing code."""
    path = model_path(out, seed)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserInputError(f"{path}: no kept model (the run did not finish this seed)") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserInputError(f"cannot read {path}: not a kept spinlearn model ({first})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("seed") != seed:
        raise UserInputError(f"cannot read {path}: not a kept spinlearn model of seed {seed}")
    return saved


def read_run(run_dir: str | Path, overrides: list[str] = ()) -> tuple[Any, Any, dict[str, Any]]:
    """The experiment, config (with ``overrides``) and summary of a finished run directory."""
    out = Path(run_dir)
    try:
        summary = json.loads((out / "summary.json").read_text())
        tree = config_mod.load_yaml(out / "config.yaml")
    except (OSError, ValueError) as exc:
        raise UserInputError(
            f"{out} holds no finished run ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    experiment = get(summary["experiment"])
    if experiment.evaluate is None:
        raise UserInputError(f"{experiment.name} keeps no model to evaluate")
    cfg = config_mod.build(
        experiment.config_cls, experiment.default_config(), tree, config_mod.parse_overrides(list(overrides))
    )
    return experiment, cfg, summary


def _context(seed: int, device: torch.device | str, out: Path) -> RunContext:
    return RunContext(seed=seed, device=torch.device(device), out_dir=out)


def load_run(
    run_dir: str | Path, seed: int | None = None, device: torch.device | str = "cpu"
) -> torch.nn.Module:
    """The trained model of ``seed`` (default: the run's first) from a run directory, its chip and
    backend restored: ``spinlearn.load_run("runs/iris-afd", seed=3)(x)``."""
    experiment, cfg, summary = read_run(run_dir)
    seed = summary["seeds"][0] if seed is None else seed
    if seed not in summary["seeds"]:
        raise UserInputError(f"seed {seed} is not one of the run's seeds {summary['seeds']}")
    model, _ = experiment.evaluate(
        cfg, _context(seed, device, Path(run_dir)), load_saved(Path(run_dir), seed)
    )
    return model  # the scoring closure is never called: the backend stands as before the final test


def evaluate_run(
    run_dir: str | Path,
    run: tuple[Any, Any, dict[str, Any]],
    device: torch.device | str = "cpu",
    progress=lambda steps=1: None,
) -> dict[int, dict[str, float]]:
    """Every kept seed's metrics, re-evaluated from its file; ``run`` is :func:`read_run`'s answer
    for ``run_dir`` (its config may carry overrides: other data)."""
    experiment, cfg, summary = run
    out: dict[int, dict[str, float]] = {}
    for seed in summary["seeds"]:
        saved = load_saved(Path(run_dir), seed)
        _, score = experiment.evaluate(cfg, _context(seed, device, Path(run_dir)), saved)
        out[seed] = score()
        progress()
    return out
