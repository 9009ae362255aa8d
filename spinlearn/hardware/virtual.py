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

Besides the sweep commands of :mod:`.scpi`, the 2400's status, trigger and data-store commands that
pymeasure's ``Keithley2400`` buffered reading uses (``config_buffer``, ``start_buffer``,
``wait_for_buffer``, ``means``, ``buffer_data``) work as in the 2400's manual (long forms and the
``CALCulate3`` suffix are understood):

=================================================  ==================================================
``*STB?``                                          status byte: MSB 1, EAV 4, QSB 8, ESB 32, MSS 64 (enabled
                                                   by ``*SRE``), OSB 128
``*SRE <n>``, ``*ESE <n>`` (and ``?``), ``*ESR?``  service request / standard event enables; ``*ESR?`` reads
                                                   and clears the standard events
``*CLS``                                           clear the error queue and every event register
``*OPC``, ``*WAI``                                 operation complete (every command completes at once here)
``:STAT:PRES``                                     clear the measurement, questionable and operation enable
                                                   registers
``:STAT:MEAS|QUES|OPER:ENAB <n>``, ``?``           event enable registers (summary bit in ``*STB?``)
``:STAT:MEAS|QUES|OPER[:EVEN]?``, ``...:COND?``    read and clear the events; the condition
``:STAT:QUE?``                                     next error (as ``:SYST:ERR?``)
``:TRIG:COUN <n>``, ``:ARM:COUN <n>`` (and ``?``)  cycles per arm and arms: 1 to 2500, product too
``:TRIG:DEL <s>``, ``?``                           trigger delay (adds to each reading's time)
``:INIT``, ``:ABOR``                               run the trigger model (completes before the next command);
                                                   abort (nothing is left to abort)
``:TRAC:CLE``                                      empty the buffer
``:TRAC:POIN <n>``, ``?``, ``:TRAC:POIN:ACT?``     buffer size, 1 to 2500 (100 at power-on; a new size empties
                                                   it); readings stored
``:TRAC:FEED SENS``, ``?``                         store raw readings (the only feed fitted)
``:TRAC:FEED:CONT NEXT|NEV``, ``?``                fill the buffer and stop / store nothing
``:TRAC:TST:FORM ABS|DELT``, ``?``                 timestamps from the first stored reading / deltas
``:TRAC:DATA?``                                    stored readings, each with the ``:FORM:ELEM`` elements
``:FORM:DATA ASC``, ``?``                          data format (ASCII is the only one fitted)
``:CALC3:FORM MEAN|SDEV|MAX|MIN|PKPK``, ``?``      buffer statistic
``:CALC3:DATA?``                                   the statistic of the stored voltage, current and resistance
                                                   (9.91E37 where a value is not a number)
=================================================  ==================================================

Measurement event register (``:STAT:MEAS``): bit 6 (64) reading available, bit 8 (256) buffer
available (two readings stored), bit 9 (512) buffer full, bit 14 (16384) compliance; events latch on
the condition's rising edge until read or ``*CLS``. Every source-measure cycle (``:READ?``,
``:MEAS:VOLT?``, ``:INIT``) feeds the buffer while ``:TRAC:FEED:CONT`` is ``NEXT``; when the buffer
is full the control returns to ``NEV`` (so it can be reconfigured), as on the 2400, where the buffer
survives ``*RST`` too. Errors in the 2400's terms: ``800,"Illegal with storage active"`` (buffer
size or feed changed while storing), ``-230,"Data corrupt or stale"`` (``:TRAC:DATA?`` or
``:CALC3:DATA?`` of an empty buffer; here the reply is then one set of 9.91E37 rather than nothing,
as the 6430's manual has it, so a client never waits out its timeout).

Fault injection (``faults={"garble": 5}``: from the 6th reading query on) makes wrong answers on
purpose: ``garble`` (a reply with non-numeric junk), ``short`` (a reading missing), ``nan`` (SCPI
not-a-number readings), ``silent`` (no reply at all: the client times out), ``idn`` (``*IDN?`` names
another instrument). Faults touch ``:READ?`` and ``:MEAS...?`` replies only.
"""

from __future__ import annotations

import collections
import math
import re
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import IO

import torch

from spinlearn import __version__
from spinlearn.devices import mtj
from spinlearn.devices.mtj import MTJParams
from spinlearn.hardware import scpi
from spinlearn.hardware.profile import DeviceProfile

FAULTS = ("garble", "short", "nan", "silent", "idn")
HOST = "127.0.0.1"  # loopback only: the virtual instrument is a test double, never a network service
MAX_LINE_BYTES = 4 << 20  # longer messages are dropped with error -223 (too much data)
MAX_SOURCE_A = 1.05  # the Keithley 2400's largest current
MAX_TRIGGER_COUNT = 2500  # the Keithley 2400's reading buffer: trigger count, arm x trigger count
MAX_BUFFER_POINTS = 2500  # :TRAC:POIN
DEFAULT_BUFFER_POINTS = 100
ERROR_QUEUE = 10
OPEN_CIRCUIT = (-221, "Settings conflict; no channel closed, open-circuit reading")
STORAGE_ACTIVE = (800, "Illegal with storage active")
# Measurement event register bits (Keithley 2400 manual, status structure)
MEAS_RAV = 1 << 6  # reading available
MEAS_BAV = 1 << 8  # buffer available: at least two readings stored
MEAS_BFL = 1 << 9  # buffer full
MEAS_COMP = 1 << 14  # source in compliance
# Status byte bits
STB_MSB, STB_EAV, STB_QSB, STB_MAV, STB_ESB, STB_MSS, STB_OSB = (1 << b for b in (0, 2, 3, 4, 5, 6, 7))
# Standard event status register bits: operation complete and the four error classes
ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME = 1, 4, 8, 16, 32
REGISTERS = ("MEAS", "QUES", "OPER")  # :STATus event register sets
STATISTICS = {"MEAN": "MEAN", "SDEV": "SDEV", "SDEVIATION": "SDEV", "MAX": "MAX", "MAXIMUM": "MAX"}
STATISTICS |= {"MIN": "MIN", "MINIMUM": "MIN", "PKPK": "PKPK"}
# Long forms of the status and data-store nodes that .scpi's header table lacks: long -> short.
_LONG_FORMS = {
    "CALCULATE": "CALC",
    "TRACE": "TRAC",
    "CONTROL": "CONT",
    "PRESET": "PRES",
    "ENABLE": "ENAB",
    "MEASUREMENT": "MEAS",
    "EVENT": "EVEN",
    "CONDITION": "COND",
    "QUESTIONABLE": "QUES",
    "OPERATION": "OPER",
    "ACTUAL": "ACT",
    "TSTAMP": "TST",
    "QUEUE": "QUE",
}
_CALC = re.compile(r":?CALC(?:ULATE)?(\d*)\b", re.IGNORECASE)
POLL_S = 0.1  # how often a connection checks for shutdown while waiting for input
SEND_TIMEOUT_S = 10.0
SHORT_OHM = 10.0  # a broken-down junction


class ScpiError(Exception):
    """A command the instrument rejects: pushed to the error queue as ``code,"message"``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f'{code},"{message}"')
        self.code = code


def _number(text: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScpiError(-104, "Data type error") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ScpiError(-222, "Data out of range")
    return value


def _integer(text: str, lo: float, hi: float) -> int:
    value = _number(text, lo, hi)
    if not value.is_integer():
        raise ScpiError(-104, "Data type error")
    return int(value)


def _choice(text: str, words: dict[str, str]) -> str:
    """The short form of a named parameter (``NEVER`` -> ``NEV``) among ``words`` (long and short)."""
    word = words.get(text.strip().strip("'\"").upper())
    if word is None:
        raise ScpiError(-224, "Illegal parameter value")
    return word


def header_key(header: str) -> str:
    """The handler key of a header: :func:`.scpi.normalise_header`, plus the long forms of the status
    and data-store nodes and the suffix of ``CALCulate<n>`` (``:calculate3:data?`` -> ``CALC3:DATA?``)."""
    key = scpi.normalise_header(header)
    if key.startswith("*"):
        return key
    query = key.endswith("?")
    nodes = [_LONG_FORMS.get(node, node) for node in key.removesuffix("?").split(":")]
    if nodes[0] == "CALC":
        match = _CALC.match(header.strip())
        nodes[0] += (match.group(1) if match else "") or "1"
    return ":".join(nodes) + ("?" if query else "")


def _boolean(text: str) -> bool:
    word = text.strip().upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise ScpiError(-224, "Illegal parameter value")


class VirtualInstrument:
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
        self._errors: collections.deque[str] = collections.deque()
        self._reset()
        # Status registers and the data store: *RST leaves them alone (IEEE 488.2; the 2400's buffer).
        self.events = dict.fromkeys(REGISTERS, 0)
        self.enables = dict.fromkeys(REGISTERS, 0)
        self.meas_condition = 0
        self.esr = self.ese = self.sre = 0
        self.buffer: list[list[float]] = []  # stored readings, each a full row in scpi.ELEMENTS order
        self.buffer_points = DEFAULT_BUFFER_POINTS
        self.feed_control = "NEV"
        self.timestamps = "ABS"
        self.in_compliance = False  # the last reading's

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

    def _push_error(self, text: str) -> None:
        code = int(text.partition(",")[0])
        if -200 < code <= -100:
            self.esr |= ESR_CME
        elif -300 < code <= -200:
            self.esr |= ESR_EXE
        elif -400 < code <= -300 or code > 0:
            self.esr |= ESR_DDE
        elif code <= -400:
            self.esr |= ESR_QYE
        if len(self._errors) >= ERROR_QUEUE:
            self._errors.pop()
            text = '-350,"Queue overflow"'
        self._errors.append(text)

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
                    if isinstance(exc, _Stale):
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

    def _cls(self, args: str) -> None:
        self._errors.clear()
        self.events = dict.fromkeys(REGISTERS, 0)
        self.esr = 0

    def _opc(self, args: str) -> str:
        return "1"

    def _set_opc(self, args: str) -> None:
        self.esr |= ESR_OPC  # every command has completed by the time the next one is read

    def _no_op(self, args: str) -> None:  # *WAI, :ABOR: nothing is ever pending
        pass

    # -- status ----------------------------------------------------------------------------------------
    def status_byte(self) -> int:
        """The IEEE 488.2 status byte as the 2400 builds it (``*STB?``; MAV is 0: replies are sent
        as they are made)."""
        stb = STB_EAV if self._errors else 0
        for register, bit in zip(REGISTERS, (STB_MSB, STB_QSB, STB_OSB), strict=True):
            if self.events[register] & self.enables[register]:
                stb |= bit
        if self.esr & self.ese:
            stb |= STB_ESB
        if stb & self.sre:
            stb |= STB_MSS
        return stb

    def _stb(self, args: str) -> str:
        return str(self.status_byte())

    def _set_sre(self, args: str) -> None:
        self.sre = _integer(args, 0, 255) & ~STB_MSS  # MSS cannot be enabled

    def _get_sre(self, args: str) -> str:
        return str(self.sre)

    def _set_ese(self, args: str) -> None:
        self.ese = _integer(args, 0, 255)

    def _get_ese(self, args: str) -> str:
        return str(self.ese)

    def _esr(self, args: str) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    def _preset(self, args: str) -> None:
        self.enables = dict.fromkeys(REGISTERS, 0)

    def _set_enable(self, register: str, args: str) -> None:
        self.enables[register] = _integer(args, 0, 65535)

    def _get_enable(self, register: str, args: str) -> str:
        return str(self.enables[register])

    def _event(self, register: str, args: str) -> str:
        value, self.events[register] = self.events[register], 0
        return str(value)

    def _condition(self, register: str, args: str) -> str:
        return str(self.meas_condition if register == "MEAS" else 0)

    def _update_condition(self, extra_events: int = 0) -> None:
        """Recompute the measurement condition; its rising edges (and ``extra_events``) latch as events."""
        condition = MEAS_COMP if self.in_compliance else 0
        if len(self.buffer) >= 2:
            condition |= MEAS_BAV
        if self.buffer and len(self.buffer) >= self.buffer_points:
            condition |= MEAS_BFL
        self.events["MEAS"] |= (condition & ~self.meas_condition) | extra_events
        self.meas_condition = condition

    def _error(self, args: str) -> str:
        return self._errors.popleft() if self._errors else '0,"No error"'

    def _set_output(self, args: str) -> None:
        self.output = _boolean(args)
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
        self.level_a = _number(args, -MAX_SOURCE_A, MAX_SOURCE_A)

    def _get_level(self, args: str) -> str:
        return scpi.format_number(self.level_a)

    def _accept_number(self, args: str) -> None:  # ranges, auto-range flags, delays: no effect here
        _number(args)

    def _set_list(self, args: str) -> None:
        items = args.split(",")
        if len(items) > self.max_list_points:
            raise ScpiError(-223, "Too much data")
        self.source_list = [_number(x, -MAX_SOURCE_A, MAX_SOURCE_A) for x in items]

    def _list_points(self, args: str) -> str:
        return str(len(self.source_list))

    def _set_sense(self, args: str) -> None:
        names = [scpi.normalise_header(x.strip().strip("'\"").split(":")[0]) for x in args.split(",")]
        if not set(names) <= {"SENS:VOLT", "SENS:CURR", "SENS:RES"}:
            raise ScpiError(-224, "Illegal parameter value")

    def _set_compliance(self, args: str) -> None:
        self.compliance_v = _number(args, 0.0, 210.0)
        if self.compliance_v <= 0:
            raise ScpiError(-222, "Data out of range")

    def _get_compliance(self, args: str) -> str:
        return scpi.format_number(self.compliance_v)

    def _set_nplc(self, args: str) -> None:
        self.nplc = _number(args, 0.01, 10.0)

    def _get_nplc(self, args: str) -> str:
        return scpi.format_number(self.nplc)

    def _set_elements(self, args: str) -> None:
        names = [scpi.normalise_header(x.strip()).removeprefix("SENS:") for x in args.split(",")]
        if not names or not set(names) <= set(scpi.ELEMENTS):
            raise ScpiError(-224, "Illegal parameter value")
        self.elements = [e for e in scpi.ELEMENTS if e in names]  # the 2400 keeps its own order

    def _get_elements(self, args: str) -> str:
        return ",".join(self.elements)

    def _set_count(self, args: str) -> None:
        count = _integer(args, 1, MAX_TRIGGER_COUNT)
        if count * self.arm_count > MAX_TRIGGER_COUNT:
            raise ScpiError(-221, f"Settings conflict; arm count x trigger count exceeds {MAX_TRIGGER_COUNT}")
        self.trigger_count = count

    def _get_count(self, args: str) -> str:
        return str(self.trigger_count)

    def _set_arm_count(self, args: str) -> None:
        count = _integer(args, 1, MAX_TRIGGER_COUNT)
        if count * self.trigger_count > MAX_TRIGGER_COUNT:
            raise ScpiError(-221, f"Settings conflict; arm count x trigger count exceeds {MAX_TRIGGER_COUNT}")
        self.arm_count = count

    def _get_arm_count(self, args: str) -> str:
        return str(self.arm_count)

    def _set_trigger_delay(self, args: str) -> None:
        self.trigger_delay_s = _number(args, 0.0, 999.9999)

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

    # -- data store ----------------------------------------------------------------------------------
    def _store(self, rows: list[list[float]]) -> None:
        if self.feed_control != "NEXT":
            return
        self.buffer.extend(rows[: self.buffer_points - len(self.buffer)])
        if len(self.buffer) >= self.buffer_points:
            self.feed_control = "NEV"  # the 2400 stops storing once the buffer is full
            self._record(f"! buffer full: {len(self.buffer)} readings")

    def _storage_idle(self) -> None:
        if self.feed_control == "NEXT":
            raise ScpiError(*STORAGE_ACTIVE)

    def _trace_clear(self, args: str) -> None:
        self.buffer = []
        self._update_condition()

    def _set_points(self, args: str) -> None:
        self._storage_idle()
        self.buffer_points = _integer(args, 1, MAX_BUFFER_POINTS)
        self.buffer = []  # a new size empties the buffer
        self._update_condition()

    def _get_points(self, args: str) -> str:
        return str(self.buffer_points)

    def _actual_points(self, args: str) -> str:
        return str(len(self.buffer))

    def _set_feed(self, args: str) -> None:
        self._storage_idle()
        if _choice(args, {"SENS": "SENS", "SENSE": "SENS", "SENS1": "SENS", "SENSE1": "SENS"}) != "SENS":
            raise ScpiError(-221, "Settings conflict; only raw readings can be stored")

    def _get_feed(self, args: str) -> str:
        return "SENS"

    def _set_feed_control(self, args: str) -> None:
        self.feed_control = _choice(args, {"NEXT": "NEXT", "NEV": "NEV", "NEVER": "NEV"})
        self._record(f"! buffer storage {'on' if self.feed_control == 'NEXT' else 'off'}")

    def _get_feed_control(self, args: str) -> str:
        return self.feed_control

    def _set_timestamps(self, args: str) -> None:
        self.timestamps = _choice(args, {"ABS": "ABS", "ABSOLUTE": "ABS", "DELT": "DELT", "DELTA": "DELT"})

    def _get_timestamps(self, args: str) -> str:
        return self.timestamps

    def _trace_data(self, args: str) -> str:
        """The stored readings with the ``:FORM:ELEM`` elements; timestamps from the first one."""
        if not self.buffer:
            raise _Stale(len(self.elements))
        times = [row[scpi.ELEMENTS.index("TIME")] for row in self.buffer]
        origin = [times[0], *times[:-1]] if self.timestamps == "DELT" else [times[0]] * len(times)
        out = []
        for row, t0 in zip(self.buffer, origin, strict=True):
            values = dict(zip(scpi.ELEMENTS, row, strict=True))
            values["TIME"] -= t0
            out.extend(scpi.format_number(values[e]) for e in self.elements)
        return ",".join(out)

    def _set_statistic(self, args: str) -> None:
        self.statistic = _choice(args, STATISTICS)

    def _get_statistic(self, args: str) -> str:
        return self.statistic

    def _statistic_data(self, args: str) -> str:
        """The selected statistic of the stored voltages, currents and resistances (in this order)."""
        if not self.buffer:
            raise _Stale(3)
        out = []
        for element in ("VOLT", "CURR", "RES"):
            x = torch.tensor([row[scpi.ELEMENTS.index(element)] for row in self.buffer], dtype=torch.float64)
            if (x.abs() >= scpi.NAN_CODE).any():
                out.append(scpi.NAN_CODE)  # a statistic of not-a-number readings is not a number
            elif self.statistic == "MEAN":
                out.append(float(x.mean()))
            elif self.statistic == "SDEV":
                out.append(float(x.std()) if len(x) > 1 else 0.0)  # the sample deviation (n - 1)
            elif self.statistic == "MAX":
                out.append(float(x.max()))
            elif self.statistic == "MIN":
                out.append(float(x.min()))
            else:
                out.append(float(x.max() - x.min()))
        return ",".join(scpi.format_number(v) for v in out)

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


class _Stale(ScpiError):
    """A query of an empty buffer: error -230 is queued and ``values`` not-a-numbers are the reply."""

    def __init__(self, values: int) -> None:
        super().__init__(-230, "Data corrupt or stale; the buffer is empty")
        self.reply = ",".join([scpi.format_number(scpi.NAN_CODE)] * values)


def _status_handlers(register: str) -> dict:
    def set_enable(self: VirtualInstrument, args: str) -> None:
        self._set_enable(register, args)

    def get_enable(self: VirtualInstrument, args: str) -> str:
        return self._get_enable(register, args)

    def event(self: VirtualInstrument, args: str) -> str:
        return self._event(register, args)

    def condition(self: VirtualInstrument, args: str) -> str:
        return self._condition(register, args)

    root = f"STAT:{register}"
    return {
        f"{root}:ENAB": set_enable,
        f"{root}:ENAB?": get_enable,
        f"{root}?": event,
        f"{root}:EVEN?": event,
        f"{root}:COND?": condition,
    }


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
    **{k: v for register in REGISTERS for k, v in _status_handlers(register).items()},
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


class _Connection(socketserver.BaseRequestHandler):
    """One client: lines in, replies out; gives up on shutdown, on an idle client and on send stalls."""

    server: InstrumentServer

    def setup(self) -> None:
        with self.server.count_lock:
            self.server.active += 1

    def finish(self) -> None:
        with self.server.count_lock:
            self.server.active -= 1

    def handle(self) -> None:
        sock: socket.socket = self.request
        instrument = self.server.instrument
        buffer = bytearray()
        last = time.monotonic()
        while not self.server.stopping.is_set():
            sock.settimeout(POLL_S)
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                if time.monotonic() - last > self.server.idle_timeout_s:
                    return
                continue
            except OSError:
                return
            if not chunk:
                return
            last = time.monotonic()
            buffer += chunk
            while (end := buffer.find(b"\n")) >= 0:
                line = buffer[:end].decode("ascii", "replace").rstrip("\r")
                del buffer[: end + 1]
                reply = instrument.handle_line(line)
                if reply is not None:
                    sock.settimeout(SEND_TIMEOUT_S)
                    try:
                        sock.sendall(reply.encode("ascii", "replace") + b"\n")
                    except OSError:
                        return
            if len(buffer) > MAX_LINE_BYTES:
                instrument.overflow()
                buffer.clear()


class InstrumentServer(socketserver.ThreadingTCPServer):
    """Serves a :class:`VirtualInstrument` on ``127.0.0.1:port`` (0: a free port) from a thread.

    Use as a context manager (or :meth:`start`/:meth:`stop`): stopping closes the listening socket
    and every connection within ``POLL_S`` and joins their threads, so nothing is left running.
    """

    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True

    def __init__(self, instrument: VirtualInstrument, port: int = 0, idle_timeout_s: float = 3600.0) -> None:
        self.instrument = instrument
        self.stopping = threading.Event()
        self.idle_timeout_s = idle_timeout_s
        self.active = 0  # open connections
        self.count_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((HOST, port), _Connection)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def resource(self) -> str:
        """The VISA resource name of this server (pyvisa-py's raw TCP socket)."""
        return f"TCPIP::{HOST}::{self.port}::SOCKET"

    def start(self) -> InstrumentServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
        )
        self._thread.start()
        return self

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until every client has hung up and its last messages are handled; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.active

    def stop(self, grace_s: float = 2.0) -> None:
        """Stop serving: clients get ``grace_s`` to finish (their last messages are handled), then
        every connection is closed."""
        self.wait_idle(grace_s)
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server_close()  # joins the connection threads
        self.instrument.close()

    def __enter__(self) -> InstrumentServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
