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

Fault injection (``faults={"garble": 5}``: from the 6th reading query on) makes wrong answers on
purpose: ``garble`` (a reply with non-numeric junk), ``short`` (a reading missing), ``nan`` (SCPI
not-a-number readings), ``silent`` (no reply at all: the client times out), ``idn`` (``*IDN?`` names
another instrument).
"""

from __future__ import annotations

import collections
import math
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
MAX_TRIGGER_COUNT = 2500  # the Keithley 2400's reading buffer
ERROR_QUEUE = 10
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
        self._reset()
        self._errors: collections.deque[str] = collections.deque()

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
                key = scpi.normalise_header(header)
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

    def _opc(self, args: str) -> str:
        return "1"

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
        value = _number(args, 1, MAX_TRIGGER_COUNT)
        if not value.is_integer():
            raise ScpiError(-104, "Data type error")
        self.trigger_count = int(value)

    def _get_count(self, args: str) -> str:
        return str(self.trigger_count)

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
        """Trigger: apply every point of the sweep and return its readings."""
        self.read_queries += 1
        if self._fault("silent"):
            self._record("! fault: no reply")
            return _SILENT
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
            raise ScpiError(-221, "Settings conflict; no channel closed")
        if len(channels) != n:
            raise ScpiError(-221, "Settings conflict; scan list length differs from the trigger count")
        idx = torch.tensor([self.channel_index[c] for c in channels])
        current = torch.tensor(currents, dtype=torch.float64)
        pop = mtj.MTJPopulation(*(p[idx] for p in self.devices))
        v = mtj.voltage(current, pop)
        clamp = v.abs() > self.compliance_v
        v = torch.where(clamp, self.compliance_v * v.sign(), v)  # the source gives up at compliance
        self._damage(idx, channels, v)
        noise = torch.randn(v.shape, generator=self.generator, dtype=v.dtype)
        reading = v + self.params.read_noise_v * noise
        self.readings += n
        step = self.nplc / 50.0
        status = scpi.STATUS_V_MEASURE | scpi.STATUS_I_SOURCE
        columns = {
            "VOLT": reading.tolist(),
            "CURR": currents,
            "RES": [scpi.NAN_CODE] * n,
            "TIME": [self.clock_s + step * (k + 1) for k in range(n)],
            "STAT": [float(status | (scpi.STATUS_COMPLIANCE if c else 0)) for c in clamp.tolist()],
        }
        self.clock_s += step * n
        values = [columns[e][k] for k in range(n) for e in self.elements]
        return self._corrupt([scpi.format_number(x) for x in values])

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
    "SYST:ERR?": VirtualInstrument._error,
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
