"""Run an experiment over seeds, aggregate, and write the run directory.

``OUT/config.yaml`` (written first), ``OUT/run.yaml`` (where the numbers came from:
:mod:`spinlearn.provenance`), ``OUT/metrics.jsonl`` (one line per epoch per seed, rewritten
after every epoch), ``OUT/checkpoints/seed<S>.pt`` (rewritten after every epoch; what ``--resume``
continues from), ``OUT/models/seed<S>.pt`` (each finished seed's model,
:mod:`spinlearn.experiments.kept`), ``OUT/summary.json`` and the plots with their data
(:mod:`spinlearn.plots`), all written atomically. A directory holding a finished run is refused
unless the run overwrites or resumes it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from spinlearn import __version__, checkpoint, plots, provenance, tracking
from spinlearn.checkpoint import Checkpoint
from spinlearn.config import dump_yaml, to_dict
from spinlearn.energy import breakdown
from spinlearn.errors import UserInputError
from spinlearn.experiments.common import profile_calibration_range
from spinlearn.experiments.kept import MODELS, save_model
from spinlearn.experiments.registry import Experiment, RunContext, SeedResult
from spinlearn.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from spinlearn.plots import energy_bars as energy_plot
from spinlearn.tracking import Trackers

MAX_SEED = 2**32 - 1  # what scikit-learn's random_state accepts
CHECKPOINTS = "checkpoints"  # the run directory's folder of per-seed checkpoints
DEVICES = ("auto", "cpu", "cuda", "cuda:N")  # what --device takes
log = logging.getLogger("spinlearn")


def prepare_out_dir(
    out: Path, resume: bool = False, config_text: str | None = None, overwrite: bool = True
) -> None:
    """Create ``out`` and drop a previous run's summary, metrics, checkpoints and plots, so a failed
    re-run cannot leave them beside a new config. With ``resume`` keep the checkpoints, after
    checking that ``out`` holds a run of the same config (``config_text``). Without ``overwrite``
    a finished run in ``out`` (its ``summary.json``) is refused."""
    if not resume and not overwrite and (out / "summary.json").exists():
        raise UserInputError(
            f"{out} holds a finished run (summary.json): give --overwrite to replace it, "
            "--resume to keep it, or another --out"
        )
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
        _remove_plots(out)
        for name in ("summary.json", "metrics.jsonl", provenance.RUN_FILE):
            (out / name).unlink(missing_ok=True)
        if not resume:
            shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
            shutil.rmtree(out / MODELS, ignore_errors=True)
            shutil.rmtree(out / tracking.TENSORBOARD, ignore_errors=True)
    except OSError as exc:
        raise UserInputError(f"cannot use output directory {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise UserInputError(f"cannot use output directory {out}: not writable")


def _remove_plots(out: Path) -> None:
    """The plots of the run that ``out/summary.json`` describes, in every format, and their data:
    named by the summary, so that no other file in ``out`` is touched."""
    try:
        import json

        names = json.loads((out / "summary.json").read_text()).get("plots", [])
    except (OSError, ValueError, AttributeError):
        return
    for name in names:
        if isinstance(name, str) and Path(name).name == name:
            for suffix in (*(f".{f}" for f in plots.FORMATS), ".csv"):
                (out / name).with_suffix(suffix).unlink(missing_ok=True)


def resolve_device(name: str) -> torch.device:
    """``auto`` (the first CUDA GPU when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise UserInputError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"--device {name} requested but no CUDA GPU is available")
    if index and int(index) >= torch.cuda.device_count():
        raise UserInputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return torch.device(name)


@contextlib.contextmanager
def deterministic_algorithms(on: bool) -> Iterator[None]:
    """With ``on``, torch's deterministic algorithms (and cuDNN's) for the run, restored after;
    cuBLAS needs its workspace setting for that, set here unless the user set one."""
    if not on:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    before_cudnn = torch.backends.cudnn.deterministic
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before_cudnn


def aggregate(results: list[SeedResult], field: str = "metrics") -> dict[str, float]:
    """For every metric (or other ``field`` of the results): ``<metric>`` and ``<metric>_mean``
    (mean over seeds), ``<metric>_std`` (sample std, 0 for one seed), ``<metric>_min`` and
    ``<metric>_max`` (the range over seeds, as the DANP paper's bands show it). The plain name lets
    single-run figures such as ``cosine_best`` be read under the name their experiment gives them."""
    out: dict[str, float] = {}
    for name in getattr(results[0], field):
        values = [float(getattr(r, field)[name]) for r in results]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        out[name] = mean
        out[f"{name}_mean"] = mean
        out[f"{name}_std"] = math.sqrt(var)
        out[f"{name}_min"], out[f"{name}_max"] = min(values), max(values)
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
    """Progress of ``total`` steps; yields ``advance(steps=1, record=None)``, where ``record`` is the
    step's figures (an epoch's ``metrics.jsonl`` record).

    On a terminal, a rich bar with the elapsed time, an ETA and the last record's loss and accuracy.
    Elsewhere (a notebook, nohup, a batch job's log) one line per step on stderr, flushed at once.
    Nothing when ``quiet``."""
    if quiet:
        yield lambda steps=1, record=None: None
        return
    if not sys.stderr.isatty():
        yield _line_progress(description, total)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(bar_width=20),  # room for the figures on an 80-column terminal
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        "eta",
        TimeRemainingColumn(),
        "{task.fields[figures]}",
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total, figures="")

        def advance(steps: int = 1, record: dict | None = None) -> None:
            bar.update(task, advance=steps, **({"figures": _figures(record)} if record else {}))

        yield advance


#: figures a progress line shows, when an epoch's record has them
_SHOWN = ("train_loss", "loss", "train_accuracy", "test_accuracy", "accuracy", "recall")


def _figures(record: dict | None) -> str:
    if not record:
        return ""
    where = " ".join(f"{k} {record[k]}" for k in ("seed", "epoch") if k in record)
    shown = [f"{k}={record[k]:.4g}" for k in _SHOWN if isinstance(record.get(k), int | float)]
    return " ".join([where, *shown]).strip()


def _line_progress(description: str, total: int) -> Any:
    started = time.perf_counter()
    done = skipped = 0

    def advance(steps: int = 1, record: dict | None = None) -> None:
        nonlocal done, skipped
        if steps <= 0:
            return
        done += steps
        if record is None and steps > 1:  # a resumed run's epochs done before: no time spent on them
            skipped += steps
            if done < total:
                return
        elapsed = time.perf_counter() - started
        eta = elapsed / (done - skipped) * (total - done) if done > skipped else 0.0
        line = f"{description}: {done}/{total} elapsed {elapsed:.0f} s eta {eta:.0f} s {_figures(record)}"
        print(line.rstrip(), file=sys.stderr, flush=True)

    return advance


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
    *,
    overwrite: bool = False,
    log_to: tuple[str, ...] | str = (),
    argv: list[str] | None = None,
    deterministic: bool = False,
    plot_formats: tuple[str, ...] = ("png",),
    epoch_hook: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Run seeds ``seed .. seed + n_seeds - 1``, write the run directory, return the summary.

    ``backend`` names where the devices are (``hardware.BACKENDS``); an instrument backend takes
    the VISA ``resource``. Every backend a seed opens is closed when the seed ends, however it ends
    (an instrument's output goes off), and its description lands in the summary as ``backend``.

    Every seed checkpoints at the end of each epoch (``OUT/checkpoints/seed<S>.pt``,
    :mod:`spinlearn.checkpoint`). With ``resume``, ``out_dir`` must hold a run of the same config:
    finished seeds are taken from their checkpoints, an unfinished one continues after its last
    complete epoch, and the metrics are those of an uninterrupted run. Without ``resume`` an
    ``out_dir`` holding a finished run is refused unless ``overwrite`` (its plots are then removed).

    ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:func:`resolve_device`); ``deterministic``
    runs torch's deterministic algorithms. ``OUT/run.yaml`` records the run (``argv``: the command
    line, when the run came from one; :mod:`spinlearn.provenance`), ``log_to`` names trackers
    (:mod:`spinlearn.tracking`), ``plot_formats`` the files each plot is written as.

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
    prepare_out_dir(out, resume, config_text, overwrite)
    write_text_atomic(out / "config.yaml", config_text)
    where = {
        "seed": seed,
        "seeds": n_seeds,
        "backend": backend,
        "resource": resource,
        "visa_library": visa_library,
    }
    run = provenance.record(argv, experiment.name, to_dict(config), where, torch_device, deterministic)
    provenance.write(out, run)
    log.info("%s: seeds %d..%d on %s into %s", experiment.name, seed, seed + n_seeds - 1, torch_device, out)
    trackers = Trackers(tracking.parse_log_to(log_to), out, run, n_seeds)
    try:
        with deterministic_algorithms(deterministic), plots.output(plot_formats) as plotted:
            summary = _run_seeds(
                experiment, config, config_text, out, seed, n_seeds, torch_device, quiet, trackers,
                backend=backend, resource=resource, visa_library=visa_library, resume=resume,
                epoch_hook=epoch_hook,
            )  # fmt: skip
            summary["run"] = provenance.finish(out, run)
            write_json_atomic(out / "summary.json", summary)
        trackers.finish(
            summary, [*plotted, *(out / n for n in ("config.yaml", provenance.RUN_FILE, "summary.json"))]
        )
    except BaseException:
        trackers.close(failed=True)
        raise
    trackers.close()
    return summary


def _run_seeds(
    experiment: Experiment,
    config: Any,
    config_text: str,
    out: Path,
    seed: int,
    n_seeds: int,
    torch_device: torch.device,
    quiet: bool,
    trackers: Trackers,
    *,
    backend: str,
    resource: str | None,
    visa_library: str,
    resume: bool,
    epoch_hook: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """The seeds' training and the summary (written by the caller)."""
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
                trackers.epoch(records[-1])
                advance(record=records[-1])
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
                # before the backends close (the model's state holds their devices) and before
                # the checkpoint marks the seed finished (a finished seed has its model)
                save_model(out, s, result)
                described = seed_described or described
            finally:
                for opened in ctx.backends:
                    opened.close()
            ckpt.save(result=_result_record(result, seed_described))
            log.info("%s: seed %d done: %s", experiment.name, s, tracking.numeric(result.metrics))
            results.append(result)
    write_records()
    figures = experiment.plot(results, config, out) if experiment.plot else []
    energy = aggregate_energy(results) if results[0].energy else None
    if energy:
        figures.append(energy_plot(energy, breakdown(energy), out / "energy.png"))
    summary = {
        "experiment": experiment.name,
        "metrics": aggregate(results),
        "paper": {t.metric: t.value for t in experiment.targets_for(backend) if t.published},
        "targets": [
            {"metric": t.metric, "value": t.value, "source": t.source, "published": t.published}
            | ({"reading": t.reading} if t.reading else {})
            for t in experiment.targets_for(backend)
        ],
        "seeds": list(range(seed, seed + n_seeds)),
        "per_seed": {k: [r.metrics[k] for r in results] for k in results[0].metrics},
        "runtime_s": round(time.perf_counter() - started, 3),
        **({"timing": aggregate(results, "timings")} if results[0].timings else {}),
        "device": torch_device.type,
        **({"energy": energy} if energy else {}),
        **({"backend": described} if described else {}),
        "plots": [p.name for p in figures],
        "spinlearn_version": __version__,
    }
    return summary
