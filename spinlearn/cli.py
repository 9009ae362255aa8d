"""The ``spinlearn`` command line. Exit codes: 0 success, 2 bad input, 1 anything else; interrupted:
130 (Ctrl-C), 143 (SIGTERM), 129 (SIGHUP)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

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
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoints (same config): finished seeds are kept, "
        "an unfinished one goes on after its last complete epoch",
    )
    run.add_argument(
        "--backend",
        default="simulated",
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

    energy = sub.add_parser("energy", help="a run's energy: device training vs digital baseline")
    energy.add_argument("run_dir", help="a run's output directory (holding summary.json)")

    rep = sub.add_parser("reproduce", help="run every experiment with a target; results.md with the table")
    rep.add_argument(
        "--quick",
        action="store_true",
        help="subsets, fewer epochs, seeds and sweep points; labelled quick (minutes)",
    )
    rep.add_argument("--out", default="runs/reproduce", help="output directory")
    rep.add_argument("--device", default="cpu", help="cpu or cuda")
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
    _sweep_parser(sub)
    return parser


def _sweep_parser(sub) -> None:
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
    )
    out = args.out or f"runs/{args.name}-sweep"
    print((Path(out) / "sweep.md").read_text(), end="")
    print(f"wrote {out}/sweep.json, sweep.csv, sweep.md and plots")
    failed = sum(row["failed"] for row in rows)
    if failed:
        print(f"spinlearn: {failed} trial(s) failed (errors in {out}/sweep.csv)", file=sys.stderr)
        return 1
    return 0


def _visa_library_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--visa-library",
        default="@py",
        help="PyVISA backend: @py (pyvisa-py, default), @ivi (a vendor VISA), FILE.yaml@sim (pyvisa-sim)",
    )


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
    summary = run_experiment(
        exp,
        cfg,
        out,
        args.seed,
        args.seeds,
        args.device,
        args.quiet,
        backend=args.backend,
        resource=args.resource,
        visa_library=args.visa_library,
        resume=args.resume,
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


def _fault_spec(items: list[str]) -> dict[str, int]:
    from spinlearn.hardware.virtual import FAULTS

    faults = {}
    for item in items:
        kind, _, after = item.partition(":")
        if kind not in FAULTS:
            raise UserInputError(f"--fault {item!r}: kind must be one of {', '.join(FAULTS)}")
        try:
            faults[kind] = int(after) if after else 0
        except ValueError:
            raise UserInputError(f"--fault {item!r}: N must be an integer") from None
    return faults


def cmd_instrument(args) -> int:
    from spinlearn.devices.mtj import MTJParams
    from spinlearn.errors import ConfigError
    from spinlearn.hardware.profile import DeviceProfile
    from spinlearn.hardware.virtual import InstrumentServer

    profile = DeviceProfile.load(args.profile) if args.profile else DeviceProfile.default()
    if not 0 <= args.port <= 65535:
        raise UserInputError(f"--port must lie in 0..65535, got {args.port}")
    for name in ("variability", "twin_mismatch", "breakdown_v"):
        if not getattr(args, name) >= 0:
            raise UserInputError(f"--{name.replace('_', '-')} must be >= 0")
    if args.max_list_points < 1:
        raise UserInputError("--max-list-points must be >= 1")
    try:
        params = MTJParams(read_noise_v=args.read_noise_v)
    except ConfigError as exc:
        raise UserInputError(f"--{exc}") from None
    try:
        instrument = _make_instrument(profile, args, params)
    except OSError as exc:
        raise UserInputError(f"cannot open --log {args.log}: {exc.strerror or exc}") from None
    try:
        server = InstrumentServer(instrument, args.port)
    except OSError as exc:
        instrument.close()
        raise UserInputError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(f"listening on {server.resource} ({len(profile.pairs)} neuron/twin pairs)", flush=True)
        try:
            stop.wait(args.lifetime_s)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    print("stopped", flush=True)
    return 0


def _make_instrument(profile, args, params):
    from spinlearn.hardware.virtual import VirtualInstrument

    return VirtualInstrument(
        profile,
        params=params,
        seed=args.seed,
        variability=args.variability,
        twin_mismatch=args.twin_mismatch,
        breakdown_v=args.breakdown_v,
        max_list_points=args.max_list_points,
        faults=_fault_spec(args.fault),
        log_path=args.log,
        keep_log=False,
    )


def cmd_calibrate(args) -> int:
    from pathlib import Path

    from spinlearn.hardware.calibration import calibrate
    from spinlearn.hardware.profile import DeviceProfile
    from spinlearn.runner import progress_bar

    limits = DeviceProfile.load(args.profile) if args.profile else DeviceProfile.default()
    plot = args.plot or str(Path(args.out).with_suffix(".png"))
    with progress_bar("calibrate (sweeps)", args.repeats, args.quiet) as advance:
        profile, fits, record = calibrate(
            args.resource,
            limits,
            args.out,
            plot=plot,
            points=args.points,
            repeats=args.repeats,
            visa_library=args.visa_library,
            progress=advance,
        )
    print(f"{record['identity']} on {args.resource}: {len(fits)} devices, {record['readings']} readings")
    print(f"{'device':<18}{'R_P ohm':>10}{'TMR0':>8}{'I0 uA':>9}{'Is uA':>8}{'V_h V':>8}{'rms mV':>8}")
    for k, fit in enumerate(fits):
        p, q = fit.params, fit.quality
        v_half = f"{p.v_half_v:.3g}" if q["v_half_identified"] else "n.i."
        name = f"pair {k // 2} {'twin' if k % 2 else 'neuron'}"
        print(
            f"{name:<18}{p.r_p_ohm:>10.1f}{p.tmr0:>8.3f}{p.i0_a * 1e6:>9.2f}{p.is_a * 1e6:>8.2f}"
            f"{v_half:>8}{q['rms_residual_v'] * 1e3:>8.3f}"
        )
    n = profile.nominal
    print(
        f"median: R_P {n.r_p_ohm:.1f} ohm, TMR0 {n.tmr0:.3f}, I0 {n.i0_a * 1e6:.2f} uA, "
        f"Is {n.is_a * 1e6:.2f} uA, V_h {n.v_half_v:.3g} V, read noise {n.read_noise_v * 1e3:.3g} mV "
        f"(V_h identified on {record['v_half_identified']} of {len(fits)}; n.i.: not identified)"
    )
    print(f"wrote {args.out} and {plot}")
    return 0


COMMANDS = {
    "list": cmd_list,
    "instrument": cmd_instrument,
    "calibrate": cmd_calibrate,
    "show": cmd_show,
    "run": cmd_run,
    "energy": cmd_energy,
    "reproduce": cmd_reproduce,
    "sweep": cmd_sweep,
}


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program stands, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: Long commands: a signal ends them as Ctrl-C does.
INTERRUPTIBLE = ("run", "calibrate", "reproduce", "sweep")


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
        args = build_parser().parse_args(argv)
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
