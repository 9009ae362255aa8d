"""Sweeps on Ray Tune: the cross product of config grids, every (point, seed) one trial.

Each trial runs exactly what ``spinlearn run NAME --seed S --seeds 1`` runs
(:func:`spinlearn.runner.run_experiment`, same config) into ``OUT/<point>/seed<S>/``, so a point's
metrics are those of ``spinlearn run`` with the same config and seeds. Without an address Ray starts
a private instance on this machine (never a cluster an earlier ``ray start`` left recorded); with
one (``address=`` or ``RAY_ADDRESS``) it joins that cluster. Ray is imported only by the sweep, on use.

Resume: a trial is finished when its ``summary.json`` exists (written last, atomically), failed
when it left ``error.json``, stopped early by the scheduler when it left ``early_stopped.json``.
With ``resume`` a finished or early-stopped trial is not run again and an unfinished one continues
from its checkpoint. That record lives in the run directories themselves, written the moment a trial
ends, rather than in Tune's experiment state, which Tune snapshots only every so often (a
``kill -9`` would lose the trials finished since) and which is a pickle.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from spinlearn import config as config_mod
from spinlearn.errors import UserInputError
from spinlearn.io import write_text_atomic
from spinlearn.sweep.trial import EARLY, FAILED, FINISHED, Trial, record_ending, run_trial, trial_status
from spinlearn.tracking import parse_log_to

EXTRA = "pip install 'spinlearn[sweep]'"
PLAN = "sweep.yaml"  # what was swept: compared on --resume
TUNE_DIR = "_tune"  # Tune's own storage under OUT
SCHEDULERS = ("asha",)
MODES = ("max", "min")


def _split_values(text: str) -> list[str]:
    """``0,0.1,[16,16]`` -> ``["0", "0.1", "[16,16]"]``: commas inside brackets belong to a value."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts]


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["device.variability=0,0.05"]`` -> ``{"device.variability": [0, 0.05]}``; every value is
    read as ``--set`` reads one (:func:`spinlearn.config.parse_value`)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserInputError(f"--grid expects dotted.key=V1,V2,..., got {item!r}")
        if not text.strip():
            raise UserInputError(f"--grid {key}: no values (give {key}=V1,V2,...)")
        texts = _split_values(text)
        if any(not t for t in texts):
            raise UserInputError(f"--grid {key}: empty value in {text!r} (give V1,V2,...)")
        _add_key(grid, key, [config_mod.parse_value(t) for t in texts], "--grid")
    return grid


def _add_key(grid: dict[str, list[Any]], key: str, values: Any, source: str) -> None:
    if key in grid:
        raise UserInputError(f"{source}: {key} is swept twice")
    if not isinstance(values, list) or not values:
        raise UserInputError(f"{source}: {key} needs a non-empty list of values, got {values!r}")
    texts = [json.dumps(v) for v in values]
    if len(set(texts)) < len(texts):
        raise UserInputError(f"{source}: {key} repeats a value in {values!r}")
    grid[key] = values


def split_tree(tree: dict[str, Any] | None, source: str = "config file") -> tuple[dict, dict[str, list]]:
    """A YAML tree's config sections and its ``grid:`` section (key -> list of values)."""
    tree = dict(tree or {})
    section = tree.pop("grid", None) or {}
    if not isinstance(section, dict):
        raise UserInputError(f"{source}: grid must be a mapping of dotted.key -> list of values")
    grid: dict[str, list[Any]] = {}
    for key, values in section.items():
        if isinstance(values, list):  # YAML 1.1 reads 2e-6 as a string; --set reads it as a number
            values = [config_mod.parse_value(v) if isinstance(v, str) else v for v in values]
        _add_key(grid, str(key), values, f"{source} grid")
    return tree, grid


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _point_names(points: list[dict[str, Any]]) -> list[str]:
    names = [
        re.sub(r"[^A-Za-z0-9._=,+\-\[\]]", "_", ",".join(f"{k}={_value_text(v)}" for k, v in p.items()))
        for p in points
    ]
    if len(set(names)) < len(names):  # values differing only in characters a path cannot hold
        names = [f"{i:03d}-{name}" for i, name in enumerate(names)]
    return names


def plan(
    experiment: Any,
    grid: dict[str, list[Any]],
    out: Path,
    seeds: int = 1,
    seed: int = 0,
    tree: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[Trial]:
    """Every trial of the sweep, each point's config built and validated (a bad key or value
    raises :class:`~spinlearn.errors.ConfigError` naming it, before anything runs)."""
    from spinlearn.runner import MAX_SEED

    if not grid:
        raise UserInputError("nothing to sweep: give --grid KEY=V1,V2,... or a grid: section")
    if seeds < 1:
        raise UserInputError(f"--seeds must be >= 1, got {seeds}")
    if seed < 0 or seed + seeds - 1 > MAX_SEED:
        raise UserInputError(f"seeds must lie in 0..{MAX_SEED}, got {seed}..{seed + seeds - 1}")
    both = sorted(set(grid) & set(overrides or {}))
    if both:
        raise UserInputError(f"{', '.join(both)}: given both as --grid and as --set")
    points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    trials = []
    for name, values in zip(_point_names(points), points, strict=True):
        cfg = config_mod.build(
            experiment.config_cls, experiment.default_config(), tree, {**(overrides or {}), **values}
        )
        trials += [Trial(name, values, s, cfg, out / name / f"seed{s}") for s in range(seed, seed + seeds)]
    return trials


def _plan_text(experiment: Any, trials: list[Trial]) -> str:
    points: dict[str, Any] = {}
    for t in trials:
        points.setdefault(t.point, {"values": t.values, "config": config_mod.to_dict(t.config)})
    return yaml.safe_dump(
        {"experiment": experiment.name, "seeds": sorted({t.seed for t in trials}), "points": points},
        sort_keys=False,
    )


def _prepare(out: Path, text: str, trials: list[Trial], resume: bool) -> None:
    """On resume, check ``out`` holds this sweep; else forget every earlier trial record there."""
    if resume:
        try:
            earlier = (out / PLAN).read_text()
        except OSError:
            raise UserInputError(f"--resume: {out} holds no sweep to resume (no {PLAN})") from None
        if earlier != text:
            raise UserInputError(
                f"--resume: {out} holds a sweep of another grid, seeds or config; give the same, "
                "or run without --resume to start afresh"
            )
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out / TUNE_DIR, ignore_errors=True)
        for t in trials:  # a record left by an earlier sweep must not pass for this one's
            for name in (FINISHED, FAILED, EARLY, "config.yaml"):
                (t.out / name).unlink(missing_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot use output directory {out}: {exc.strerror or exc}") from None
    write_text_atomic(out / PLAN, text)


def usable_cpus() -> int:
    """The cores this process may run on (its affinity, as ``taskset`` or a container sets it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _ray_init(address: str | None) -> Any:
    # Set before Ray is imported: no usage report over the network, no Tune console tables, and a
    # Ctrl-C or SIGTERM that ends the sweep as it ends `spinlearn run` (Tune would catch it).
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1000000")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address or address.split(":")[0] in ("127.0.0.1", "localhost"):
        # Ray's switch for single-machine instances: every service on 127.0.0.1, none reachable
        # from another machine. Without it Ray binds this machine's network address, and rewrites
        # a loopback --address to that address, where a cluster on loopback does not answer.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError:
        raise UserInputError(f"spinlearn sweep needs Ray Tune: {EXTRA}") from None
    # A failed trial is reported once, in one line, by the sweep: not as Tune's logged traceback.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserInputError(f"cannot join the Ray cluster at {address}: {exc}") from None
        return ray, None
    temp = tempfile.mkdtemp(prefix="spinlearn-ray-")  # short: Ray's socket paths must fit 107 bytes
    ray.init(
        address="local",
        num_cpus=usable_cpus(),
        include_dashboard=False,
        _temp_dir=temp,
        **quiet,
    )
    return ray, temp


def _fit(
    trials: list[Trial],
    todo: list[int],
    experiment: str,
    out: Path,
    resources: dict[str, float],
    scheduler: Any,
    resume: bool,
    advance: Callable[..., None],
    log_to: tuple[str, ...] = (),
) -> dict[int, Any]:
    """Run the trials ``todo`` in one Tune grid search; Tune's result for each."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self, step: Callable[..., None]) -> None:
            self.step = step

        def __getstate__(self) -> dict:  # Tune pickles its run config (for a restore not used here)
            return {"step": None}

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.step()

        def on_trial_error(self, iteration, trials, trial, **info):
            self.step()

    trainable = tune.with_parameters(
        run_trial,
        trials=trials,
        name=experiment,
        device="cuda" if resources["gpu"] else "cpu",
        threads=max(1, int(resources["cpu"])),
        resume=resume,
        log_to=log_to,
        report_epochs=scheduler is not None,
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={"trial": tune.grid_search(todo)},
        tune_config=tune.TuneConfig(
            reuse_actors=True, scheduler=scheduler, trial_dirname_creator=lambda t: t.trial_id
        ),
        run_config=tune.RunConfig(
            name="sweep",
            storage_path=str((out / TUNE_DIR).resolve()),
            verbose=0,
            log_to_file=False,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=[Progress(advance)],
        ),
    )
    return {result.config["trial"]: result for result in tuner.fit()}


def _check_resources(ray: Any, resources: dict[str, float]) -> None:
    have = ray.cluster_resources()
    for name, flag in (("cpu", "--cpus-per-trial"), ("gpu", "--gpus-per-trial")):
        available = have.get(name.upper(), 0)
        if resources[name] > available:
            raise UserInputError(
                f"{flag} {resources[name]:g}: the Ray cluster has {available:g} {name.upper()}s"
            )


def _check_scheduler(name: str | None, metric: str | None, mode: str) -> None:
    if name is None:
        return
    if name not in SCHEDULERS:
        raise UserInputError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}")
    if not metric:
        raise UserInputError(f"--scheduler {name} needs --metric (an epoch record's key, e.g. test_accuracy)")
    if mode not in MODES:
        raise UserInputError(f"--mode must be max or min, got {mode!r}")


def _asha(metric: str, mode: str, epochs: int) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    # max_t past the last epoch: ASHA stops every trial that reaches max_t, which at the last
    # epoch's report would cut a run short of its summary.
    return ASHAScheduler(metric=metric, mode=mode, max_t=epochs + 1, grace_period=1)


def sweep(
    name: str,
    grid: dict[str, list[Any]] | None = None,
    *,
    seeds: int = 1,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    config: str | Path | dict[str, Any] | None = None,
    out: str | Path | None = None,
    address: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    scheduler: str | None = None,
    metric: str | None = None,
    mode: str = "max",
    resume: bool = False,
    quiet: bool = False,
    log_to: str | tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Run experiment ``name`` at every point of ``grid`` (dotted key -> list of values; their cross
    product) for seeds ``seed .. seed + seeds - 1``, each (point, seed) one Ray Tune trial, and
    write ``OUT/sweep.json``, ``sweep.csv``, ``sweep.md`` and a plot per swept key.

    Args:
        name: a registered experiment (``spinlearn list``).
        grid: values to sweep, e.g. ``{"device.variability": [0, 0.1]}``; added to the ``grid:``
            section of ``config``.
        overrides: fixed dotted-key values for every point, as ``--set`` gives them.
        config: a YAML file (or its tree) of config sections, with an optional ``grid:`` section.
        out: the sweep's directory (default ``runs/NAME-sweep``).
        address: a Ray cluster to join (default ``RAY_ADDRESS``; neither: a private local instance).
        cpus_per_trial, gpus_per_trial: Ray resources of one trial (GPUs: it runs on CUDA).
        scheduler: ``"asha"`` to stop poor trials early on ``metric`` (an epoch record's key,
            ``mode`` ``"max"`` or ``"min"``).
        metric: also the metric the table and plots lead with (default: the experiment's target).
        resume: keep the finished trials in ``out``, continue unfinished ones from checkpoints.
        quiet: no progress bar.
        log_to: trackers every trial also logs to (``"tensorboard,mlflow"``, as ``run --log-to``).

    Returns:
        One row per point (see :func:`spinlearn.sweep.table.rows`): the point's values, status,
        mean/std/min/max of every metric over its seeds, and energy totals.

    Raises:
        UserInputError: bad grid, key or value (before Ray starts), Ray missing, no such cluster.
    """
    from spinlearn.experiments import get
    from spinlearn.runner import progress_bar, resolve_device
    from spinlearn.sweep import table as sweep_table

    experiment = get(name)
    if isinstance(config, str | Path):
        config = config_mod.load_yaml(config)
    tree, yaml_grid = split_tree(config)
    for key, values in (grid or {}).items():
        _add_key(yaml_grid, key, list(values) if isinstance(values, tuple | range) else values, "grid")
    if not cpus_per_trial > 0 or not gpus_per_trial >= 0:
        raise UserInputError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    if gpus_per_trial and address is None and not os.environ.get("RAY_ADDRESS"):
        resolve_device("cuda")
    out = Path(out or f"runs/{experiment.name}-sweep")
    trials = plan(experiment, yaml_grid, out, seeds, seed, tree, overrides)
    _check_scheduler(scheduler, metric, mode)
    trackers = parse_log_to(log_to)  # refused before Ray starts, like a bad grid
    _prepare(out, _plan_text(experiment, trials), trials, resume)
    started = time.perf_counter()
    todo = [i for i, t in enumerate(trials) if trial_status(t) not in ("done", "early_stopped")]
    resources = {"cpu": float(cpus_per_trial), "gpu": float(gpus_per_trial)}
    results: dict[int, Any] = {}
    if todo:
        ray, temp = _ray_init(address)
        try:
            _check_resources(ray, resources)
            epochs = max(experiment.epochs_of(t.config) for t in trials)
            tune_scheduler = _asha(metric, mode, epochs) if scheduler else None
            with progress_bar(f"{experiment.name} sweep", len(trials), quiet) as advance:
                advance(len(trials) - len(todo))
                results = _fit(
                    trials, todo, experiment.name, out, resources, tune_scheduler, resume, advance, trackers
                )
        finally:
            ray.shutdown()
            if temp:
                shutil.rmtree(temp, ignore_errors=True)
    for index, result in results.items():
        record_ending(trials[index], result, scheduler is not None)
    return sweep_table.write(out, experiment, yaml_grid, trials, metric, time.perf_counter() - started)


class _CallableModule(types.ModuleType):
    """``spinlearn.sweep`` is both this module and the function: importing the module binds its
    name on the package, so ``spinlearn.sweep(...)`` must work whichever it got."""

    def __call__(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
