"""Where a run's numbers came from: ``OUT/run.yaml``.

Written when a run starts and again when it ends, it records the command line, the experiment, its
config, seeds, backend and device, whether torch ran deterministically, the git commit of the
spinlearn checkout (when run from one), the versions of spinlearn, torch, numpy and numba, the
CPU and GPU model, the thread count, and the start and end times (UTC, ISO 8601).
``spinlearn run --from OUT`` reads it back (:func:`read`) to run the same again.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from spinlearn.errors import UserInputError
from spinlearn.io import write_text_atomic

RUN_FILE = "run.yaml"
#: the distributions whose versions a run records (None: not installed)
VERSIONS = ("spinlearn", "torch", "numpy", "numba")


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit() -> dict[str, Any] | None:
    """The commit of the checkout spinlearn was imported from, and whether its tree had changes;
    None when it is an installed copy (or git is missing)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: Any) -> dict[str, Any]:
    """CPU and GPU model and the threads torch computes with (``device``: the run's torch device)."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def record(
    argv: list[str] | None,
    experiment: str,
    config: dict[str, Any],
    settings: dict[str, Any],
    device: Any,
    deterministic: bool,
) -> dict[str, Any]:
    """The provenance of a run about to start (``end`` is filled in by :func:`finish`).
    ``settings``: its ``seed``, ``seeds`` (how many), ``backend``, ``resource``, ``visa_library``."""
    return {
        "argv": list(argv) if argv is not None else None,
        "experiment": experiment,
        **settings,
        "device": str(device),
        "deterministic": deterministic,
        "git": git_commit(),
        "versions": versions(),
        "machine": machine(device),
        "start": now(),
        "end": None,
        "config": config,
    }


def write(out: Path, run: dict[str, Any]) -> Path:
    return write_text_atomic(out / RUN_FILE, yaml.safe_dump(run, sort_keys=False))


def finish(out: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Stamp the end time and rewrite ``run.yaml``; returns the record without its config (the
    summary's copy: the config is in ``config.yaml`` beside it)."""
    run["end"] = now()
    write(out, run)
    return {k: v for k, v in run.items() if k != "config"}


def read(run_dir: str | Path) -> dict[str, Any]:
    """``RUN_DIR/run.yaml``, checked enough to run it again."""
    path = Path(run_dir) / RUN_FILE
    try:
        run = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise UserInputError(f"--from: cannot read {path}: {why}") from None
    needed = ("experiment", "config", "seed", "seeds", "backend", "device")
    if not isinstance(run, dict) or any(k not in run for k in needed):
        raise UserInputError(f"--from: {path} is not a spinlearn run record (needs {', '.join(needed)})")
    return run


def command_line() -> list[str]:
    """The command as typed (``spinlearn run ...``), for a run started from the CLI."""
    return ["spinlearn", *sys.argv[1:]]
