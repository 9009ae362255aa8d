"""Run an experiment over seeds, aggregate, and write the run directory.

``OUT/config.yaml`` (written first), ``OUT/metrics.jsonl`` (one line per epoch per seed, rewritten
after every epoch), ``OUT/checkpoints/seed<S>.pt`` (rewritten after every epoch; what ``--resume``
continues from), ``OUT/summary.json`` and PNG plots, all written atomically.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from spinlearn import __version__, checkpoint
from spinlearn.checkpoint import Checkpoint
from spinlearn.config import dump_yaml
from spinlearn.energy import breakdown
from spinlearn.errors import UserInputError
from spinlearn.experiments.common import profile_calibration_range
from spinlearn.experiments.registry import Experiment, RunContext, SeedResult
from spinlearn.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from spinlearn.plots import energy_bars as energy_plot

MAX_SEED = 2**32 - 1  # what scikit-learn's random_state accepts
CHECKPOINTS = "checkpoints"  # the run directory's folder of per-seed checkpoints


def prepare_out_dir(out: Path, resume: bool = False, config_text: str | None = None) -> None:
    """Create ``out`` and drop a previous run's summary, metrics and checkpoints, so a failed re-run
    cannot leave them beside a new config. With ``resume`` keep the checkpoints, after checking
    that ``out`` holds a run of the same config (``config_text``)."""
    if resume:
        try:
            earlier = (out / "config.yaml").read_text()
        except OSError:
            raise UserInputError(
                f"--resume: {out} holds no run to resume (no config.yaml); run without --resume"
            ) from None
        if config_text is not None and earlier != config_text:
            raise UserInputError(
                f"--resume: {out} holds a run of another config; give the same --set/--config, "
                "or run without --resume to start afresh"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("summary.json", "metrics.jsonl"):
            (out / name).unlink(missing_ok=True)
        if not resume:
            shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    except OSError as exc:
        raise UserInputError(f"cannot use output directory {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise UserInputError(f"cannot use output directory {out}: not writable")


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda requested but no CUDA GPU is available")
    if name not in ("cpu", "cuda"):
        raise UserInputError(f"--device must be cpu or cuda, got {name!r}")
    return torch.device(name)


def aggregate(results: list[SeedResult], field: str = "metrics") -> dict[str, float]:
    """For every metric (or other ``field`` of the results): ``<metric>`` and ``<metric>_mean``
    (mean over seeds) and ``<metric>_std`` (sample std, 0 for one seed). The plain name lets
    single-run figures such as ``cosine_best`` be read under the name their experiment gives them."""
    out: dict[str, float] = {}
    for name in getattr(results[0], field):
        values = [float(getattr(r, field)[name]) for r in results]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        out[name] = mean
        out[f"{name}_mean"] = mean
        out[f"{name}_std"] = math.sqrt(var)
    return out


def aggregate_energy(results: list[SeedResult]) -> dict[str, float]:
    """Mean over seeds of every energy figure."""
    return {k: sum(r.energy[k] for r in results) / len(results) for k in results[0].energy}


def seed_checkpoint(
    experiment: Experiment, config_text: str, out: Path, seed: int, resume: bool, records: list[dict]
) -> tuple[Checkpoint, dict[str, Any] | None]:
    """The seed's checkpoint, and its finished result when an earlier run completed the seed."""
    path = out / CHECKPOINTS / f"seed{seed}.pt"
    meta = {
        "format": checkpoint.FORMAT,
        "experiment": experiment.name,
        "config": config_text,
        "seed": seed,
        "spinlearn_version": __version__,
    }
    saved = checkpoint.load(path, meta) if resume and path.exists() else None
    ckpt = Checkpoint(path, meta, saved, records)
    return ckpt, (saved or {}).get("result")


def _result_record(result: SeedResult, described: dict[str, Any] | None) -> dict[str, Any]:
    return checkpoint.encode(
        {
            "metrics": result.metrics,
            "history": result.history,
            "artifacts": result.artifacts,
            "energy": result.energy,
            "timings": result.timings,
            "backend": described,
        }
    )


def _from_record(record: dict[str, Any]) -> tuple[SeedResult, dict[str, Any] | None]:
    r = checkpoint.decode(record)
    return SeedResult(r["metrics"], r["history"], r["artifacts"], r["energy"], r["timings"]), r["backend"]


@contextlib.contextmanager
def progress_bar(description: str, total: int, quiet: bool) -> Iterator[Any]:
    """A rich progress bar on a terminal; a no-op when quiet or when stderr is not a TTY."""
    if quiet or not sys.stderr.isatty():
        yield lambda steps=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda steps=1: bar.advance(task, steps)


def check_backend(backend: str, resource: str | None) -> None:
    from spinlearn.hardware import BACKENDS

    if backend not in BACKENDS:
        raise UserInputError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "visa" and not resource:
        raise UserInputError("--backend visa needs --resource (a VISA resource name, e.g. GPIB0::24::INSTR)")
    if backend != "visa" and resource:
        raise UserInputError("--resource names an instrument: use it with --backend visa")


def record_backends(ctx: RunContext, result: SeedResult, name: str) -> dict[str, Any] | None:
    """The description of the seed's backend; instrument figures added to its metrics."""
    if not ctx.backends:
        if ctx.backend != "simulated":
            raise UserInputError(
                f"{name} drives no devices through a backend: --backend {ctx.backend} has no use"
            )
        return None
    figures: dict[str, float] = {}
    for opened in ctx.backends:
        for key, value in getattr(opened, "instrument_figures", dict)().items():
            figures[key] = figures.get(key, 0.0) + value
    result.metrics.update(figures)
    return ctx.backends[0].describe()


def run_experiment(
    experiment: Experiment,
    config: Any,
    out_dir: str | Path,
    seed: int = 0,
    n_seeds: int = 1,
    device: str = "cpu",
    quiet: bool = False,
    backend: str = "simulated",
    resource: str | None = None,
    visa_library: str = "@py",
    resume: bool = False,
    epoch_hook: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Run seeds ``seed .. seed + n_seeds - 1``, write the run directory, return the summary.

    ``backend`` names where the devices are (``hardware.BACKENDS``); an instrument backend takes
    the VISA ``resource``. Every backend a seed opens is closed when the seed ends, however it ends
    (an instrument's output goes off), and its description lands in the summary as ``backend``.

    Every seed checkpoints at the end of each epoch (``OUT/checkpoints/seed<S>.pt``,
    :mod:`spinlearn.checkpoint`). With ``resume``, ``out_dir`` must hold a run of the same config:
    finished seeds are taken from their checkpoints, an unfinished one continues after its last
    complete epoch, and the metrics are those of an uninterrupted run.

    ``epoch_hook``, when given, gets every epoch's record (with its ``seed``) once it is in
    ``metrics.jsonl``; a sweep reports it to its scheduler, which may stop the run there.
    """
    check_backend(backend, resource)
    if n_seeds < 1:
        raise UserInputError(f"--seeds must be >= 1, got {n_seeds}")
    if seed < 0 or seed + n_seeds - 1 > MAX_SEED:
        raise UserInputError(f"seeds must lie in 0..{MAX_SEED}, got {seed}..{seed + n_seeds - 1}")
    torch_device = resolve_device(device)
    out = Path(out_dir)
    config, derived = profile_calibration_range(config)
    if derived and not quiet:
        print(f"spinlearn: {derived}", file=sys.stderr)
    config_text = dump_yaml(config)
    prepare_out_dir(out, resume, config_text)
    write_text_atomic(out / "config.yaml", config_text)
    started = time.perf_counter()
    results: list[SeedResult] = []
    per_seed_records: list[list[dict]] = []
    described: dict[str, Any] | None = None
    epochs = experiment.epochs_of(config)

    def write_records() -> None:  # every seed's records so far: progress visible during long runs
        write_jsonl_atomic(out / "metrics.jsonl", [r for rs in per_seed_records for r in rs])

    with progress_bar(experiment.name, n_seeds * epochs, quiet) as advance:
        for s in range(seed, seed + n_seeds):
            records: list[dict] = []
            per_seed_records.append(records)
            ckpt, finished = seed_checkpoint(experiment, config_text, out, s, resume, records)
            if records:  # a resumed seed's epochs so far
                write_records()
            if finished is not None:
                result, seed_described = _from_record(finished)
                described = seed_described or described
                results.append(result)
                advance(epochs)
                continue
            advance(min(len(records), epochs))

            def on_epoch(record: dict, s: int = s, records: list[dict] = records) -> None:
                records.append({"seed": s, **record})
                write_records()
                advance()
                if epoch_hook is not None:
                    epoch_hook(records[-1])

            ctx = RunContext(
                seed=s,
                device=torch_device,
                out_dir=out,
                on_epoch=on_epoch,
                backend=backend,
                resource=resource,
                visa_library=visa_library,
                checkpoint=ckpt,
            )
            try:
                result = experiment.run(config, ctx)
                seed_described = record_backends(ctx, result, experiment.name)
                described = seed_described or described
            finally:
                for opened in ctx.backends:
                    opened.close()
            ckpt.save(result=_result_record(result, seed_described))
            results.append(result)
    write_records()
    plots = experiment.plot(results, config, out) if experiment.plot else []
    energy = aggregate_energy(results) if results[0].energy else None
    if energy:
        plots.append(energy_plot(energy, breakdown(energy), out / "energy.png"))
    summary = {
        "experiment": experiment.name,
        "metrics": aggregate(results),
        "paper": {t.metric: t.value for t in experiment.targets if t.published},
        "targets": [
            {"metric": t.metric, "value": t.value, "source": t.source, "published": t.published}
            for t in experiment.targets
        ],
        "seeds": list(range(seed, seed + n_seeds)),
        "per_seed": {k: [r.metrics[k] for r in results] for k in results[0].metrics},
        "runtime_s": round(time.perf_counter() - started, 3),
        **({"timing": aggregate(results, "timings")} if results[0].timings else {}),
        "device": torch_device.type,
        **({"energy": energy} if energy else {}),
        **({"backend": described} if described else {}),
        "plots": [p.name for p in plots],
        "spinlearn_version": __version__,
    }
    write_json_atomic(out / "summary.json", summary)
    return summary
