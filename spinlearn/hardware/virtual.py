"""A virtual instrument: a TCP server on loopback speaking the SCPI subset of :mod:`.scpi`.

Behind it sits a bench of simulated MTJs (:mod:`spinlearn.devices.mtj`, with device-to-device
variability, twin mismatch and read noise), one device per switch channel, laid out as the neuron/
twin pairs of a :class:`~spinlearn.hardware.profile.DeviceProfile`. It is the test double that lets
the real VISA path (PyVISA + pyvisa-py, resource ``TCPIP::127.0.0.1::PORT::SOCKET``) run end to end
without a lab: ``spinlearn instrument serve``.

Like a real SourceMeter it clamps the junction voltage at the compliance and flags the reading
(status bit 3). Unlike a real one it also records what a real device would suffer: a junction that
sees more than ``breakdown_v`` is destroyed (it becomes a short) and the log says so.

Every received line is logged (``> ...``), every reply (``< ...``, truncated) and every event
(``! ...``), to :attr:`VirtualInstrument.log` and, when given, to a file flushed line by line: the
tests read it to prove that no request beyond a profile's limits ever reached the instrument.

A measurement with no device connected (no channel closed and no scan list) reads as open
terminals do on a SourceMeter: the source current has nowhere to go, so the reading is the
compliance voltage (with the sign of the current; 0 V at 0 A) with the compliance bit set (status
bit 3, and measurement event bit 14), and ``-221,"Settings conflict; no channel closed, open-circuit
reading"`` is queued: SCPI's execution error for a command at odds with the instrument's state (here:
no route to any device), so that a client checking ``:SYST:ERR?`` learns that the reading is not a
device's. Unlike other errors the reply still comes, at once: a client never waits out its timeout.

The 2400's status structure and data store (what pymeasure's buffered reading polls and reads
back) are in :mod:`.virtual_status`; the TCP server in :mod:`.virtual_server`.

Fault injection (``faults={"garble": 5}``: from the 6th reading query on) makes wrong answers on
purpose: ``garble`` (a reply with non-numeric junk), ``short`` (a reading missing), ``nan`` (SCPI
not-a-number readings), ``silent`` (no reply at all: the client times out), ``idn`` (``*IDN?`` names
another instrument). Faults touch ``:READ?`` and ``:MEAS...?`` replies only.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import IO

import torch

from spinlearn import __version__
from spinlearn.devices import mtj
from spinlearn.devices.mtj import MTJParams
from spinlearn.hardware import scpi
from spinlearn.hardware.profile import DeviceProfile
from spinlearn.hardware.scpi import ScpiError, header_key, parse_boolean, parse_integer, parse_number
from spinlearn.hardware.virtual_server import InstrumentServer
from spinlearn.hardware.virtual_status import (
    MEAS_COMP,
    MEAS_RAV,
    REGISTERS,
    Stale,
    StatusAndStore,
    status_handlers,
)

FAULTS = ("garble", "short", "nan", "silent", "idn")
MAX_TRIGGER_COUNT = 2500  # the Keithley 2400's reading buffer: trigger count, arm x trigger count
OPEN_CIRCUIT = (-221, "Settings conflict; no channel closed, open-circuit reading")
SHORT_OHM = 10.0  # a broken-down junction


class VirtualInstrument(StatusAndStore):
    """A Keithley 2400-like SourceMeter and a switch matrix in front of simulated MTJ pairs.

    ``profile`` lays out the channels (its limits and fits are not used: the instrument is the
    hardware, not the client). Pair ``k``'s neuron is drawn around ``params`` with relative spread
    ``variability``, its twin around the neuron with spread ``twin_mismatch``; read noise is
    ``params.read_noise_v`` (V rms). All draws come from ``seed``.
    """

    def __init__(
        self,
        profile: DeviceProfile | None = None,
        *,
        params: MTJParams | None = None,
        seed: int = 0,
        variability: float = 0.1,
        twin_mismatch: float = mtj.DEFAULT_TWIN_MISMATCH,
        breakdown_v: float = 1.6,
        max_list_points: int = 100,
        faults: dict[str, int] | None = None,
        log_path: str | Path | None = None,
        keep_log: bool = True,
    ) -> None:
        profile = profile or DeviceProfile.default()
        self.params = params or MTJParams()
        self.breakdown_v = breakdown_v
        self.max_list_points = max_list_points
        self.faults = dict(faults or {})
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault {sorted(unknown)[0]!r} (known: {', '.join(FAULTS)})")
        self.generator = torch.Generator().manual_seed(seed)
        n = len(profile.pairs)
        neurons = mtj.sample_population(self.params, n, variability, self.generator, torch.float64)
        twins = mtj.perturb(neurons, twin_mismatch, self.params.is_a, self.generator)
        # Device index 2k is pair k's neuron, 2k + 1 its twin.
        self.devices = mtj.MTJPopulation(
            *(torch.stack((a, b), 1).reshape(-1).clone() for a, b in zip(neurons, twins, strict=True))
        )
        self.channel_index = {e.channel: i for i, e in enumerate(profile.devices)}
        self.seed, self.variability, self.twin_mismatch = seed, variability, twin_mismatch
        self.log: list[str] = []
        self.keep_log = keep_log
        self.breakdowns: list[tuple[int, float]] = []
        self._file: IO[str] | None = open(log_path, "a", buffering=1) if log_path else None
        self.lock = threading.Lock()
        self.read_queries = 0
        self.readings = 0
        super().__init__()  # the status registers and the buffer
        self._reset()

    # -- state -------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self.output = False
        self.mode = "FIX"
        self.level_a = 0.0
        self.source_list: list[float] = []
        self.compliance_v = 21.0  # the Keithley 2400's default
        self.nplc = 1.0
        self.elements = list(scpi.ELEMENTS)
        self.trigger_count = 1
        self.arm_count = 1
        self.trigger_delay_s = 0.0
        self.statistic = "MEAN"
        self.closed: int | None = None
        self.scan: list[int] = []
        self.clock_s = 0.0  # simulated measurement time, the TIME element

    @property
    def identity(self) -> str:
        return f"SPINLEARN,VIRTUAL MODEL 2400 WITH MTJ SWITCH MATRIX,{self.seed},{__version__}"

    def _record(self, line: str) -> None:
        if self.keep_log:
            self.log.append(line)
        if self._file is not None:
            self._file.write(line + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- message handling ----------------------------------------------------------------------------
    def handle_line(self, line: str) -> str | None:
        """Execute one message line; the reply (without terminator), or None when nothing is due."""
        with self.lock:
            self._record("> " + line)
            replies: list[str] = []
            path: list[str] = []
            for command in scpi.split_commands(line):
                header, _, args = command.partition(" ")
                if not header.startswith((":", "*")) and path:
                    header = ":".join(path) + ":" + header  # SCPI: relative to the previous command
                key = header_key(header)
                if not key.startswith("*"):
                    path = key.rstrip("?").split(":")[:-1]
                handler = _HANDLERS.get(key)
                try:
                    if handler is None:
                        raise ScpiError(-113, "Undefined header")
                    reply = handler(self, args.strip())
                except ScpiError as exc:
                    self._push_error(str(exc))
                    self._record(f"! error {exc} in {command[:80]!r}")
                    if isinstance(exc, Stale):
                        replies.append(exc.reply)
                    continue
                if reply is not None:
                    replies.append(reply)
            if not replies or _SILENT in replies:
                return None
            reply = ";".join(replies)
            self._record("< " + (reply if len(reply) <= 120 else reply[:117] + "..."))
            return reply

    def overflow(self) -> None:
        with self.lock:
            self._push_error('-223,"Too much data"')
            self._record("! error message longer than the input buffer, dropped")

    def _fault(self, kind: str) -> bool:
        after = self.faults.get(kind)
        return after is not None and self.read_queries > after

    # -- commands ------------------------------------------------------------------------------------
    def _idn(self, args: str) -> str:
        if self.faults.get("idn") is not None:
            return "KEITHLEY INSTRUMENTS INC.,MODEL 2000,4030,A20"  # a multimeter: the wrong instrument
        return self.identity

    def _rst(self, args: str) -> None:
        self._reset()
        self._record("! reset: output off")

    def _opc(self, args: str) -> str:
        return "1"

    def _no_op(self, args: str) -> None:  # *WAI, :ABOR: nothing is ever pending
        pass

    # -- source, sense, format, trigger ------------------------------------------------------------------
    def _set_output(self, args: str) -> None:
        self.output = parse_boolean(args)
        self._record(f"! output {'on' if self.output else 'off'}")

    def _get_output(self, args: str) -> str:
        return "1" if self.output else "0"

    def _set_function(self, args: str) -> None:
        if scpi.normalise_header(args.strip("'\"")) != "SENS:CURR":  # CURR or CURRENT, either form
            raise ScpiError(-221, "Settings conflict; only current sourcing is fitted")

    def _get_function(self, args: str) -> str:
        return "CURR"

    def _set_mode(self, args: str) -> None:
        word = args.upper()
        if word in ("FIX", "FIXED"):
            self.mode = "FIX"
        elif word == "LIST":
            self.mode = "LIST"
        else:
            raise ScpiError(-224, "Illegal parameter value")

    def _get_mode(self, args: str) -> str:
        return self.mode

    def _set_level(self, args: str) -> None:
        self.level_a = parse_number(args, -scpi.MAX_CURRENT_A, scpi.MAX_CURRENT_A)

    def _get_level(self, args: str) -> str:
        return scpi.format_number(self.level_a)

    def _accept_number(self, args: str) -> None:  # ranges, auto-range flags, delays: no effect here
        parse_number(args)

    def _set_list(self, args: str) -> None:
        items = args.split(",")
        if len(items) > self.max_list_points:
            raise ScpiError(-223, "Too much data")
        self.source_list = [parse_number(x, -scpi.MAX_CURRENT_A, scpi.MAX_CURRENT_A) for x in items]

    def _list_points(self, args: str) -> str:
        return str(len(self.source_list))

    def _set_sense(self, args: str) -> None:
        names = [scpi.normalise_header(x.strip().strip("'\"").split(":")[0]) for x in args.split(",")]
        if not set(names) <= {"SENS:VOLT", "SENS:CURR", "SENS:RES"}:
            raise ScpiError(-224, "Illegal parameter value")

    def _set_compliance(self, args: str) -> None:
        self.compliance_v = parse_number(args, 0.0, scpi.MAX_VOLTAGE_V)
        if self.compliance_v <= 0:
            raise ScpiError(-222, "Data out of range")

    def _get_compliance(self, args: str) -> str:
        return scpi.format_number(self.compliance_v)

    def _set_nplc(self, args: str) -> None:
        self.nplc = parse_number(args, 0.01, 10.0)

    def _get_nplc(self, args: str) -> str:
        return scpi.format_number(self.nplc)

    def _set_elements(self, args: str) -> None:
        names = [scpi.normalise_header(x.strip()).removeprefix("SENS:") for x in args.split(",")]
        if not names or not set(names) <= set(scpi.ELEMENTS):
            raise ScpiError(-224, "Illegal parameter value")
        self.elements = [e for e in scpi.ELEMENTS if e in names]  # the 2400 keeps its own order

    def _get_elements(self, args: str) -> str:
        return ",".join(self.elements)

    def _set_counts(self, trigger: int, arm: int) -> None:
        if trigger * arm > MAX_TRIGGER_COUNT:
            raise ScpiError(-221, f"Settings conflict; arm count x trigger count exceeds {MAX_TRIGGER_COUNT}")
        self.trigger_count, self.arm_count = trigger, arm

    def _set_count(self, args: str) -> None:
        self._set_counts(parse_integer(args, 1, MAX_TRIGGER_COUNT), self.arm_count)

    def _get_count(self, args: str) -> str:
        return str(self.trigger_count)

    def _set_arm_count(self, args: str) -> None:
        self._set_counts(self.trigger_count, parse_integer(args, 1, MAX_TRIGGER_COUNT))

    def _get_arm_count(self, args: str) -> str:
        return str(self.arm_count)

    def _set_trigger_delay(self, args: str) -> None:
        self.trigger_delay_s = parse_number(args, 0.0, 999.9999)

    def _get_trigger_delay(self, args: str) -> str:
        return scpi.format_number(self.trigger_delay_s)

    def _set_data_format(self, args: str) -> None:
        if args.strip().upper() not in ("ASC", "ASCII"):
            raise ScpiError(-221, "Settings conflict; only ASCII data is fitted")

    def _get_data_format(self, args: str) -> str:
        return "ASC"

    def _channels(self, args: str) -> list[int]:
        try:
            channels = scpi.parse_channel_list(args)
        except ValueError:
            raise ScpiError(-104, "Data type error") from None
        if len(channels) > MAX_TRIGGER_COUNT:
            raise ScpiError(-223, "Too much data")
        if any(c not in self.channel_index for c in channels):
            raise ScpiError(-222, "Data out of range; no such channel")
        return channels

    def _close(self, args: str) -> None:
        channels = self._channels(args)
        if len(channels) != 1:
            raise ScpiError(-221, "Settings conflict; close one channel at a time")
        self.closed, self.scan = channels[0], []

    def _get_closed(self, args: str) -> str:
        return scpi.channel_list([self.closed] if self.closed else [])

    def _open_all(self, args: str) -> None:
        self.closed, self.scan = None, []

    def _set_scan(self, args: str) -> None:
        self.scan, self.closed = self._channels(args), None

    def _get_scan(self, args: str) -> str:
        return scpi.channel_list(self.scan)

    def _read(self, args: str) -> str:
        """``:READ?``, ``:MEAS...?``: run the trigger model and return its readings."""
        self.read_queries += 1
        if self._fault("silent"):
            self._record("! fault: no reply")
            return _SILENT
        rows = self._trigger()
        values = [row[scpi.ELEMENTS.index(e)] for row in rows for e in self.elements]
        return self._corrupt([scpi.format_number(x) for x in values])

    def _initiate(self, args: str) -> None:
        """``:INIT``: run the trigger model; its readings go to the buffer only (when it is storing)."""
        rows = self._trigger()
        self._record(f"! init: {len(rows)} readings, {len(self.buffer)} in the buffer")

    def _trigger(self) -> list[list[float]]:
        """Arm count x trigger count source-measure cycles, each point of the sweep applied in turn;
        the readings (rows in ``scpi.ELEMENTS`` order) are stored while the buffer control is NEXT."""
        if not self.output:
            raise ScpiError(-221, "Settings conflict; output off")
        n = self.trigger_count
        currents = self.source_list if self.mode == "LIST" else [self.level_a] * n
        if len(currents) != n:
            raise ScpiError(-221, "Settings conflict; trigger count differs from the list length")
        if self.scan:
            channels = self.scan
        elif self.closed is not None:
            channels = [self.closed] * n
        else:
            channels = []
        if channels and len(channels) != n:
            raise ScpiError(-221, "Settings conflict; scan list length differs from the trigger count")
        currents, channels = currents * self.arm_count, channels * self.arm_count
        n *= self.arm_count
        current = torch.tensor(currents, dtype=torch.float64)
        if channels:
            idx = torch.tensor([self.channel_index[c] for c in channels])
            pop = mtj.MTJPopulation(*(p[idx] for p in self.devices))
            v = mtj.voltage(current, pop)
            clamp = v.abs() > self.compliance_v
            v = torch.where(clamp, self.compliance_v * v.sign(), v)  # the source gives up at compliance
            self._damage(idx, channels, v)
            noise = torch.randn(v.shape, generator=self.generator, dtype=v.dtype)
            reading = v + self.params.read_noise_v * noise
        else:  # open terminals: the current source drives its output to the compliance voltage
            clamp = current != 0
            reading = self.compliance_v * current.sign()
            self._push_error('{},"{}"'.format(*OPEN_CIRCUIT))
            self._record('! error {},"{}": {} readings of open terminals'.format(*OPEN_CIRCUIT, n))
        self.readings += n
        step = self.nplc / 50.0 + self.trigger_delay_s
        status = scpi.STATUS_V_MEASURE | scpi.STATUS_I_SOURCE
        flags = clamp.tolist()
        rows = [
            [
                volts,
                amps,
                scpi.NAN_CODE,
                self.clock_s + step * (k + 1),
                float(status | (scpi.STATUS_COMPLIANCE if flags[k] else 0)),
            ]
            for k, (volts, amps) in enumerate(zip(reading.tolist(), currents, strict=True))
        ]
        self.clock_s += step * n
        self.in_compliance = bool(flags[-1])
        self._store(rows)
        self._update_condition(MEAS_RAV | (MEAS_COMP if any(flags) else 0))
        return rows

    # -- what the devices suffer, and faults -----------------------------------------------------------
    def _damage(self, idx: torch.Tensor, channels: list[int], v: torch.Tensor) -> None:
        broken = (v.abs() > self.breakdown_v).nonzero().flatten().tolist()
        for k in broken:
            i = int(idx[k])
            if self.devices.r_p_ohm[i] != SHORT_OHM:
                self.devices.r_p_ohm[i] = SHORT_OHM
                self.devices.tmr0[i] = 1e-6
                self.breakdowns.append((channels[k], float(v[k])))
                self._record(f"! BREAKDOWN channel {channels[k]} at {float(v[k]):+.3f} V")

    def _corrupt(self, fields: list[str]) -> str:
        if self._fault("nan"):
            fields = [scpi.format_number(scpi.NAN_CODE)] * len(fields)
        if self._fault("short"):
            fields = fields[: -len(self.elements)]
        if self._fault("garble") and fields:
            fields[len(fields) // 2] = "+1.2#4\x7fE-0?"
        return ",".join(fields)


_SILENT = "\x00silent"  # a reply that is swallowed (fault injection)


_HANDLERS = {
    "*IDN?": VirtualInstrument._idn,
    "*RST": VirtualInstrument._rst,
    "*CLS": VirtualInstrument._cls,
    "*OPC?": VirtualInstrument._opc,
    "*OPC": VirtualInstrument._set_opc,
    "*WAI": VirtualInstrument._no_op,
    "*STB?": VirtualInstrument._stb,
    "*SRE": VirtualInstrument._set_sre,
    "*SRE?": VirtualInstrument._get_sre,
    "*ESE": VirtualInstrument._set_ese,
    "*ESE?": VirtualInstrument._get_ese,
    "*ESR?": VirtualInstrument._esr,
    "SYST:ERR?": VirtualInstrument._error,
    "STAT:QUE?": VirtualInstrument._error,
    "STAT:PRES": VirtualInstrument._preset,
    **{k: v for register in REGISTERS for k, v in status_handlers(register).items()},
    "OUTP": VirtualInstrument._set_output,
    "OUTP?": VirtualInstrument._get_output,
    "SOUR:FUNC": VirtualInstrument._set_function,
    "SOUR:FUNC?": VirtualInstrument._get_function,
    "SOUR:CURR:MODE": VirtualInstrument._set_mode,
    "SOUR:CURR:MODE?": VirtualInstrument._get_mode,
    "SOUR:CURR": VirtualInstrument._set_level,
    "SOUR:CURR?": VirtualInstrument._get_level,
    "SOUR:CURR:RANG": VirtualInstrument._accept_number,
    "SOUR:CURR:RANG:AUTO": VirtualInstrument._accept_number,
    "SOUR:DEL": VirtualInstrument._accept_number,
    "SOUR:LIST:CURR": VirtualInstrument._set_list,
    "SOUR:LIST:CURR:POIN?": VirtualInstrument._list_points,
    "SENS:FUNC": VirtualInstrument._set_sense,
    "SENS:VOLT:PROT": VirtualInstrument._set_compliance,
    "SENS:VOLT:PROT?": VirtualInstrument._get_compliance,
    "SENS:VOLT:NPLC": VirtualInstrument._set_nplc,
    "SENS:VOLT:NPLC?": VirtualInstrument._get_nplc,
    "SENS:VOLT:RANG": VirtualInstrument._accept_number,
    "SENS:VOLT:RANG:AUTO": VirtualInstrument._accept_number,
    "FORM:ELEM": VirtualInstrument._set_elements,
    "FORM:ELEM?": VirtualInstrument._get_elements,
    "TRIG:COUN": VirtualInstrument._set_count,
    "TRIG:COUN?": VirtualInstrument._get_count,
    "ARM:COUN": VirtualInstrument._set_arm_count,
    "ARM:COUN?": VirtualInstrument._get_arm_count,
    "TRIG:DEL": VirtualInstrument._set_trigger_delay,
    "TRIG:DEL?": VirtualInstrument._get_trigger_delay,
    "INIT": VirtualInstrument._initiate,
    "ABOR": VirtualInstrument._no_op,
    "FORM:DATA": VirtualInstrument._set_data_format,
    "FORM:DATA?": VirtualInstrument._get_data_format,
    "TRAC:CLE": VirtualInstrument._trace_clear,
    "TRAC:POIN": VirtualInstrument._set_points,
    "TRAC:POIN?": VirtualInstrument._get_points,
    "TRAC:POIN:ACT?": VirtualInstrument._actual_points,
    "TRAC:FEED": VirtualInstrument._set_feed,
    "TRAC:FEED?": VirtualInstrument._get_feed,
    "TRAC:FEED:CONT": VirtualInstrument._set_feed_control,
    "TRAC:FEED:CONT?": VirtualInstrument._get_feed_control,
    "TRAC:TST:FORM": VirtualInstrument._set_timestamps,
    "TRAC:TST:FORM?": VirtualInstrument._get_timestamps,
    "TRAC:DATA?": VirtualInstrument._trace_data,
    "CALC3:FORM": VirtualInstrument._set_statistic,
    "CALC3:FORM?": VirtualInstrument._get_statistic,
    "CALC3:DATA?": VirtualInstrument._statistic_data,
    "ROUT:CLOS": VirtualInstrument._close,
    "ROUT:CLOS?": VirtualInstrument._get_closed,
    "ROUT:OPEN:ALL": VirtualInstrument._open_all,
    "ROUT:SCAN": VirtualInstrument._set_scan,
    "ROUT:SCAN?": VirtualInstrument._get_scan,
    "READ?": VirtualInstrument._read,
    "MEAS:VOLT?": VirtualInstrument._read,
    "MEAS?": VirtualInstrument._read,
}


__all__ = ["FAULTS", "InstrumentServer", "VirtualInstrument"]
