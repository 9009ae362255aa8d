"""The ``spinlearn sweep`` command: its arguments and the call of :func:`spinlearn.sweep.sweep`."""

from __future__ import annotations

import sys


def sweep_parser(sub) -> None:
    sweep = sub.add_parser(
        "sweep",
        help="run an experiment over a grid of config values x seeds on Ray Tune (local or a cluster)",
    )
    sweep.add_argument("name")
    for flag, dest, metavar, text in (
        (
            "--grid",
            "grid",
            "KEY=V1,V2,...",
            "values to sweep, read as --set reads them (repeatable: all combined)",
        ),
        ("--set", "overrides", "KEY=VALUE", "a value for every point (repeatable)"),
    ):
        sweep.add_argument(flag, dest=dest, action="append", default=[], metavar=metavar, help=text)
    for flag, kind, default, text in (
        ("--seeds", int, 1, "seeds per point (S .. S+N-1)"),
        ("--seed", int, 0, "first seed S"),
        ("--cpus-per-trial", float, 1, "CPUs of one trial (default 1)"),
        ("--gpus-per-trial", float, 0, "GPUs of one trial (>0: it runs on CUDA)"),
        ("--mode", str, "max", "max or min: which way --metric is better"),
    ):
        sweep.add_argument(flag, type=kind, default=default, help=text)
    for flag, text in (
        ("--config", "YAML file of config sections and a grid: section (key: [values])"),
        ("--out", "output directory (default runs/NAME-sweep)"),
        ("--address", "Ray cluster to join (default RAY_ADDRESS; none: a private local one)"),
        ("--scheduler", "asha: stop poor trials early on --metric"),
        (
            "--metric",
            "metric the table and plots lead with, and the scheduler ranks by (an epoch record key)",
        ),
        ("--log-to", "trackers every trial also logs to, comma-separated: tensorboard, mlflow"),
    ):
        sweep.add_argument(flag, help=text)
    for flag, text in (
        ("--resume", "keep finished trials in --out, continue the rest"),
        ("--quiet", "no progress bar"),
    ):
        sweep.add_argument(flag, action="store_true", help=text)


def cmd_sweep(args) -> int:
    from pathlib import Path

    from spinlearn import config
    from spinlearn.sweep import parse_grid, sweep

    rows = sweep(
        args.name,
        parse_grid(args.grid),
        seeds=args.seeds,
        seed=args.seed,
        overrides=config.parse_overrides(args.overrides),
        config=args.config,
        out=args.out,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        scheduler=args.scheduler,
        metric=args.metric,
        mode=args.mode,
        resume=args.resume,
        quiet=args.quiet,
        log_to=args.log_to or (),
    )
    out = args.out or f"runs/{args.name}-sweep"
    print((Path(out) / "sweep.md").read_text(), end="")
    print(f"wrote {out}/sweep.json, sweep.csv, sweep.md and plots")
    failed = sum(row["failed"] for row in rows)
    if failed:
        print(f"spinlearn: {failed} trial(s) failed (errors in {out}/sweep.csv)", file=sys.stderr)
        return 1
    return 0
