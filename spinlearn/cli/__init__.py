"""The ``spinlearn`` command line. Exit codes: 0 success, 2 bad input, 1 anything else; interrupted:
130 (Ctrl-C), 143 (SIGTERM), 129 (SIGHUP)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from spinlearn._cliparts import (
    DEVICE_HELP,
    HelpFormatter,
    configure_logging,
    experiment_names,
    run_settings,
    version,
)
from spinlearn.cli.devices import cmd_calibrate, cmd_fit, cmd_instrument
from spinlearn.cli.sweep import cmd_sweep, sweep_parser
from spinlearn.errors import SpinlearnError, TrainingDiverged, UserInputError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserInputError(f"{message} (see `{self.prog} --help`)")

    def format_help(self) -> str:
        for action in self._actions:  # help computed when shown: e.g. the experiments' names
            if callable(action.help):
                action.help = action.help()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spinlearn", description=__doc__)
    parser.add_argument("--version", action="version", version=version())
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what happens on stderr: -v spinlearn's steps, -vv everything at debug level, "
        "instrument traffic (pyvisa, pymeasure) included",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="every registered experiment, one line each, with its target")

    show = sub.add_parser(
        "show", help="an experiment's configuration as YAML (what --config reads), with each key's doc"
    )
    show.add_argument("name", help=experiment_names)

    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("name", nargs="?", help=experiment_names)
    run.add_argument(
        "--from",
        dest="from_dir",
        metavar="RUN_DIR",
        help="run again what RUN_DIR/run.yaml records: experiment, config, seeds, backend, device "
        "(--set/--config change its config; --seed/--seeds/--device/--backend replace its own)",
    )
    run.add_argument("--seeds", type=int, help="number of seeds (S .. S+N-1) (default: 1)")
    run.add_argument("--seed", type=int, help="first seed S (default: 0)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. device.variability=0.1 (repeatable)",
    )
    run.add_argument("--config", help="YAML file of config sections")
    run.add_argument("--out", help="output directory (default: runs/NAME)")
    run.add_argument(
        "--overwrite", action="store_true", help="replace a finished run in --out (refused without)"
    )
    run.add_argument("--device", metavar="{auto,cpu,cuda,cuda:N}", help=DEVICE_HELP + " (default: auto)")
    run.add_argument(
        "--deterministic",
        action="store_true",
        help="torch's deterministic algorithms (GPU runs repeat exactly; some ops are slower)",
    )
    run.add_argument(
        "--log-to",
        metavar="TRACKERS",
        help="also log to trackers, comma-separated: tensorboard (OUT/tensorboard), mlflow "
        "(MLFLOW_TRACKING_URI, else MLflow's default store)",
    )
    run.add_argument(
        "--plot-format",
        default="png",
        metavar="FORMATS",
        help="the files each plot is written as, comma-separated: png, pdf, svg (its data: a CSV beside)",
    )
    run.add_argument(
        "--quiet",
        action="store_true",
        help="no progress (else a bar on a terminal, a line per epoch elsewhere)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoints (same config): finished seeds are kept, "
        "an unfinished one goes on after its last complete epoch",
    )
    run.add_argument(
        "--backend",
        help="where the devices are: simulated (default) or visa (an instrument; needs --resource and "
        "--set device.profile=FILE)",
    )
    run.add_argument(
        "--resource", help="VISA resource of the instrument, e.g. TCPIP::127.0.0.1::5025::SOCKET"
    )
    _visa_library_arg(run)

    inst = sub.add_parser("instrument", help="the virtual instrument (a SCPI server for tests and demos)")
    inst_sub = inst.add_subparsers(dest="instrument_command", required=True, parser_class=_Parser)
    serve = inst_sub.add_parser(
        "serve", help="serve simulated MTJs behind a Keithley 2400-like SCPI instrument on loopback"
    )
    serve.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one, printed)")
    serve.add_argument("--profile", help="device profile YAML: the channel layout (default: 32 pairs)")
    serve.add_argument("--seed", type=int, default=0, help="seed of the simulated devices and noise")
    serve.add_argument("--variability", type=float, default=0.1, help="device-to-device spread")
    serve.add_argument("--twin-mismatch", type=float, default=0.02, help="spread of a twin around its neuron")
    serve.add_argument("--read-noise-v", type=float, default=1e-4, help="rms read noise (V)")
    serve.add_argument("--breakdown-v", type=float, default=1.6, help="junction breakdown voltage (V)")
    serve.add_argument("--max-list-points", type=int, default=100, help="source-list size (2400: 100)")
    serve.add_argument("--log", help="append every command, reply and event to this file")
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:N]",
        help="answer wrongly after N reading queries: garble, short, nan, silent or idn (repeatable)",
    )
    serve.add_argument("--lifetime-s", type=float, help="stop after this many seconds")

    cal = sub.add_parser("calibrate", help="I-V sweep every device on an instrument, fit the MTJ model")
    cal.add_argument("--resource", required=True, help="VISA resource of the instrument")
    cal.add_argument("--out", required=True, help="fitted device profile to write (YAML)")
    cal.add_argument("--profile", help="device profile with the limits and channels (default: built-in)")
    cal.add_argument("--points", type=int, default=61, help="currents per device over +/- max_current_a")
    cal.add_argument("--repeats", type=int, default=4, help="sweeps averaged (their spread: read noise)")
    cal.add_argument("--plot", help="I-V and residual plot (default: OUT with .png)")
    cal.add_argument("--quiet", action="store_true", help="no progress bar")
    _visa_library_arg(cal)

    ev = sub.add_parser(
        "evaluate", help="re-evaluate the models a run kept (OUT/models/seed<S>.pt), each seed afresh"
    )
    ev.add_argument("run_dir", help="a finished run's output directory")
    ev.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="score on other data, e.g. data.test_fraction=0.5 (default: the run's own test data)",
    )
    ev.add_argument("--device", default="auto", metavar="{auto,cpu,cuda,cuda:N}", help=DEVICE_HELP)
    ev.add_argument("--quiet", action="store_true", help="no progress bar")

    fit = sub.add_parser(
        "fit", help="fit a device model to your measurements; a profile for --set device.profile="
    )
    fit_sub = fit.add_subparsers(dest="fit_command", required=True, parser_class=_Parser)
    for kind, help_text, columns in (
        ("mtj", "MTJ I-V sweeps -> device profile", "device, current_a, voltage_v, optional repeat"),
        (
            "dw",
            "domain-wall pulse responses -> DW profile",
            "device, pulse_a, pulse_s, g_before_s, g_after_s",
        ),
    ):
        one = fit_sub.add_parser(kind, help=help_text)
        one.add_argument("file", metavar="FILE.csv", help=f"CSV file with a header: {columns}")
        one.add_argument("--out", help="profile to write (default: FILE with .yaml)")
        one.add_argument("--plot", nargs="?", help="plot of data vs fit (default: OUT with .png)")
        one.add_argument("--quiet", action="store_true", help="no progress bar")
    fit_sub.choices["dw"].add_argument(
        "--track-length-m", type=float, help="track length L (m) that turns track fractions into metres"
    )

    energy = sub.add_parser("energy", help="a run's energy: device training vs digital baseline")
    energy.add_argument("run_dir", help="a run's output directory (holding summary.json)")

    rep = sub.add_parser("reproduce", help="run every experiment with a target; results.md with the table")
    rep.add_argument(
        "--quick",
        action="store_true",
        help="subsets, fewer epochs, seeds and sweep points; labelled quick (minutes)",
    )
    rep.add_argument("--out", default="runs/reproduce", help="output directory")
    rep.add_argument("--device", default="auto", metavar="{auto,cpu,cuda,cuda:N}", help=DEVICE_HELP)
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.add_argument(
        "--resume",
        action="store_true",
        help="keep the experiments that finished in --out with this config; continue an unfinished one",
    )
    rep.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated experiments to run; the others' rows are kept from --out as they are",
    )
    rep.add_argument("--readme", metavar="FILE", help="also put the table between FILE's results markers")
    sweep_parser(sub)
    return parser


def _visa_library_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--visa-library",
        default="@py",
        help="PyVISA backend: @py (pyvisa-py, default), @ivi (a vendor VISA), FILE.yaml@sim (pyvisa-sim)",
    )


def _targets_text(exp) -> str:
    return ", ".join(map(_target_text, exp.targets)) or "no target"


def _target_text(t) -> str:
    if t.value is None:
        return f"{t.metric} reported, no target"
    text = f"{t.metric} {'paper' if t.published else 'threshold'} {t.value:g}"
    return text + (f" ({', '.join(t.backends)})" if t.backends else "")


def cmd_list(args) -> int:
    from spinlearn.experiments.registry import everything

    experiments = everything()  # the built-in experiments and the installed plug-ins' ones
    width = max(len(n) for n in experiments)
    for name, exp in experiments.items():
        print(f"{name:<{width}}  {exp.summary}  [{_targets_text(exp)}]")
    return 0


def cmd_show(args) -> int:
    from spinlearn import config
    from spinlearn.experiments import get

    exp = get(args.name)
    print(f"# {exp.name}: {exp.summary}")
    print(f"# spinlearn run {exp.name} --config FILE reads this back; --set SECTION.KEY=VALUE takes a value")
    print(config.dump_commented_yaml(exp.default_config()), end="")
    return 0


def cmd_run(args) -> int:
    from spinlearn import config
    from spinlearn.experiments import get
    from spinlearn.plots import parse_formats
    from spinlearn.provenance import command_line
    from spinlearn.runner import run_experiment

    name, base_tree, settings = run_settings(args)
    exp = get(name)
    formats = parse_formats(args.plot_format)
    base = (
        config.build(exp.config_cls, exp.default_config(), base_tree) if base_tree else exp.default_config()
    )
    tree = config.load_yaml(args.config) if args.config else None
    cfg = config.build(exp.config_cls, base, tree, config.parse_overrides(args.overrides))
    out = args.out or f"runs/{exp.name}"
    summary = run_experiment(
        exp,
        cfg,
        out,
        settings["seed"],
        settings["seeds"],
        settings["device"],
        args.quiet,
        backend=settings["backend"],
        resource=settings["resource"],
        visa_library=args.visa_library,
        resume=args.resume,
        overwrite=args.overwrite,
        log_to=args.log_to or (),
        argv=command_line(),
        deterministic=args.deterministic,
        plot_formats=formats,
    )
    for name, value in summary["metrics"].items():
        if name + "_mean" in summary["metrics"]:
            continue  # printed as <name>_mean
        print(f"{name:<36} {value:.6g}")
    print(f"wrote {out}/summary.json ({summary['runtime_s']:.1f} s)")
    return 0


def cmd_reproduce(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from spinlearn.report import HEADER, readme_block, reproduce, table_markdown, update_readme

    if args.readme:
        readme_block(args.readme)
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only is not None else None
    rows = reproduce(
        args.out, quick=args.quick, device=args.device, quiet=args.quiet, resume=args.resume, only=only
    )
    if args.readme:
        update_readme(args.readme, table_markdown(rows))
    table = Table(title="spinlearn reproduce" + (" (quick)" if args.quick else ""))
    for column in HEADER:
        table.add_column(column)
    for row in rows:
        table.add_row(*row.cells())
    Console(width=140).print(table)
    print(f"wrote {args.out}/results.md" + (f" and the table in {args.readme}" if args.readme else ""))
    return 0


def cmd_evaluate(args) -> int:
    from spinlearn.experiments.kept import evaluate_run, read_run
    from spinlearn.runner import progress_bar, resolve_device

    device = resolve_device(args.device)
    run = read_run(args.run_dir, args.overrides)
    summary = run[2]
    with progress_bar("evaluate", len(summary["seeds"]), args.quiet) as advance:
        scores = evaluate_run(args.run_dir, run, device, advance)
    recorded = dict(zip(summary["seeds"], summary["per_seed"].get("test_accuracy", []), strict=False))
    for seed, metrics in scores.items():
        line = "  ".join(f"{name} {value:.6g}" for name, value in metrics.items())
        known = "" if args.overrides or seed not in recorded else f"  (summary.json: {recorded[seed]:.6g})"
        print(f"seed {seed}: {line}{known}")
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
    "instrument": cmd_instrument,
    "calibrate": cmd_calibrate,
    "fit": cmd_fit,
    "show": cmd_show,
    "run": cmd_run,
    "energy": cmd_energy,
    "evaluate": cmd_evaluate,
    "reproduce": cmd_reproduce,
    "sweep": cmd_sweep,
}


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program stands, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: Long commands: a signal ends them as Ctrl-C does.
INTERRUPTIBLE = ("run", "calibrate", "reproduce", "evaluate", "sweep")


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM (kill, timeout, SLURM's scancel, systemd) and SIGHUP (a closed terminal) end a long
    command as Ctrl-C does: every ``finally`` on the way out runs, so an instrument's source output
    goes off and the checkpoint of the last complete epoch stays for ``--resume``. Repeats of the
    signal while that happens are ignored. Exit code 128 + the signal's number."""
    caught = (signal.SIGTERM, signal.SIGHUP)
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def handler(signum: int, frame) -> None:
        for sig in caught:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in caught}
    try:
        yield
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`spinlearn show NAME | head`): end quietly, and keep Python from
        # complaining when it flushes stdout on the way out.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        configure_logging(args.verbose)
        if args.command not in INTERRUPTIBLE:
            return COMMANDS[args.command](args)
        with signals_interrupt():
            return COMMANDS[args.command](args)
    except UserInputError as exc:
        print(f"spinlearn: error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"spinlearn: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"spinlearn: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    except SpinlearnError as exc:
        print(f"spinlearn: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
