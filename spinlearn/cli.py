"""The ``spinlearn`` command line. Exit codes: 0 success, 2 bad input, 130 interrupted, 1 anything else."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spinlearn.errors import SpinlearnError, TrainingDiverged, UserInputError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserInputError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spinlearn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="every registered experiment, one line each, with its target")

    show = sub.add_parser("show", help="an experiment's configuration keys, defaults and docs")
    show.add_argument("name")

    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("name")
    run.add_argument("--seeds", type=int, default=1, help="number of seeds (S .. S+N-1)")
    run.add_argument("--seed", type=int, default=0, help="first seed S")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. device.variability=0.1 (repeatable)",
    )
    run.add_argument("--config", help="YAML file of config sections")
    run.add_argument("--out", help="output directory (default runs/NAME)")
    run.add_argument("--device", default="cpu", help="cpu or cuda")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    energy = sub.add_parser("energy", help="a run's energy: device training vs digital baseline")
    energy.add_argument("run_dir", help="a run's output directory (holding summary.json)")

    rep = sub.add_parser("reproduce", help="run every experiment with a target; table + report.md")
    rep.add_argument(
        "--quick",
        action="store_true",
        help="subsets, fewer epochs, seeds and sweep points; labelled quick (minutes)",
    )
    rep.add_argument("--out", default="runs/reproduce", help="output directory")
    rep.add_argument("--device", default="cpu", help="cpu or cuda")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _targets_text(exp) -> str:
    return (
        ", ".join(f"{t.metric} {'paper' if t.published else 'threshold'} {t.value:g}" for t in exp.targets)
        or "no target"
    )


def cmd_list(args) -> int:
    from spinlearn.experiments import EXPERIMENTS

    width = max(len(n) for n in EXPERIMENTS)
    for name, exp in EXPERIMENTS.items():
        print(f"{name:<{width}}  {exp.summary}  [{_targets_text(exp)}]")
    return 0


def cmd_show(args) -> int:
    from spinlearn import config
    from spinlearn.experiments import get

    exp = get(args.name)
    print(f"# {exp.name}: {exp.summary}")
    defaults = config.to_dict(exp.default_config())
    for key, _, doc in config.describe(exp.config_cls):
        section, name = key.split(".", 1)
        print(f"{key} = {defaults[section][name]!r}  # {doc}")
    return 0


def cmd_run(args) -> int:
    from spinlearn import config
    from spinlearn.experiments import get
    from spinlearn.runner import run_experiment

    exp = get(args.name)
    tree = config.load_yaml(args.config) if args.config else None
    cfg = config.build(exp.config_cls, exp.default_config(), tree, config.parse_overrides(args.overrides))
    out = args.out or f"runs/{exp.name}"
    summary = run_experiment(exp, cfg, out, args.seed, args.seeds, args.device, args.quiet)
    for name, value in summary["metrics"].items():
        if name + "_mean" in summary["metrics"]:
            continue  # printed as <name>_mean
        print(f"{name:<36} {value:.6g}")
    print(f"wrote {out}/summary.json ({summary['runtime_s']:.1f} s)")
    return 0


def cmd_reproduce(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from spinlearn.report import HEADER, reproduce

    rows = reproduce(args.out, quick=args.quick, device=args.device, quiet=args.quiet)
    table = Table(title="spinlearn reproduce" + (" (quick)" if args.quick else ""))
    for column in HEADER:
        table.add_column(column)
    for row in rows:
        table.add_row(*row.cells())
    Console(width=140).print(table)
    print(f"wrote {args.out}/report.md")
    return 0


def cmd_energy(args) -> int:
    import json
    from pathlib import Path

    from spinlearn.energy import table_rows

    path = Path(args.run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(summary, dict) or "energy" not in summary:
        raise UserInputError(f"{path} has no energy figures (runs of spinlearn >= 0.1 with devices have)")
    print(f"{summary.get('experiment', '?')}: energy, mean over seeds {summary.get('seeds')}")
    for label, value in table_rows(summary["energy"]):
        print(f"  {label:<34} {value}")
    return 0


COMMANDS = {
    "list": cmd_list,
    "show": cmd_show,
    "run": cmd_run,
    "energy": cmd_energy,
    "reproduce": cmd_reproduce,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserInputError as exc:
        print(f"spinlearn: error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"spinlearn: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("spinlearn: interrupted", file=sys.stderr)
        return 130
    except SpinlearnError as exc:
        print(f"spinlearn: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
