"""The device commands of the command line: the virtual instrument (``instrument serve``), the
instrument's calibration (``calibrate``) and fits of measured data (``fit mtj``, ``fit dw``)."""

from __future__ import annotations

import contextlib
import signal
import threading

from spinlearn.errors import UserInputError


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


def cmd_fit(args) -> int:
    from pathlib import Path

    from spinlearn.runner import progress_bar

    out = Path(args.out or Path(args.file).with_suffix(".yaml"))
    if out.resolve() == Path(args.file).resolve():
        raise UserInputError(f"--out {out} would overwrite the data file")
    plot = Path(args.plot or out.with_suffix(".png"))
    with contextlib.ExitStack() as stack:

        def progress(n: int):
            return stack.enter_context(progress_bar(f"fit {args.fit_command} (devices)", n, args.quiet))

        try:
            if args.fit_command == "mtj":
                from spinlearn.hardware import fit_mtj as fitter

                result = fitter.fit_file(args.file, out, plot=plot, progress=progress)
            else:
                from spinlearn.hardware import fit_dw as fitter

                length = args.track_length_m
                if length is not None and not 0 < length <= 1:
                    raise UserInputError(f"--track-length-m must be > 0 and <= 1, got {length:g}")
                result = fitter.fit_file(args.file, out, plot=plot, track_length_m=length, progress=progress)
        except OSError as exc:
            raise UserInputError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    print("\n".join(fitter.report(result)))
    print(f"wrote {out} and {plot}")
    return 0
