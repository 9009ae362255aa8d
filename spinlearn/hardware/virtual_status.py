"""The virtual 2400's status structure, error queue and data store (its trigger model is run by
:class:`~.virtual.VirtualInstrument`).

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
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import torch

from spinlearn.hardware import scpi
from spinlearn.hardware.scpi import ScpiError, parse_choice, parse_integer

MAX_BUFFER_POINTS = 2500  # :TRAC:POIN
DEFAULT_BUFFER_POINTS = 100
ERROR_QUEUE = 10
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


class Stale(ScpiError):
    """A query of an empty buffer: error -230 is queued and ``values`` not-a-numbers are the reply."""

    def __init__(self, values: int) -> None:
        super().__init__(-230, "Data corrupt or stale; the buffer is empty")
        self.reply = ",".join([scpi.format_number(scpi.NAN_CODE)] * values)


class StatusAndStore:
    """The status registers, error queue and reading buffer of :class:`~.virtual.VirtualInstrument`,
    and the commands that drive them; the instrument logs through its ``_record``.

    ``*RST`` leaves the registers and the buffer alone (IEEE 488.2; the 2400's buffer survives a
    reset too).
    """

    def __init__(self) -> None:
        self._errors: collections.deque[str] = collections.deque()
        self.events = dict.fromkeys(REGISTERS, 0)
        self.enables = dict.fromkeys(REGISTERS, 0)
        self.meas_condition = 0
        self.esr = self.ese = self.sre = 0
        self.buffer: list[list[float]] = []  # stored readings, each a full row in scpi.ELEMENTS order
        self.buffer_points = DEFAULT_BUFFER_POINTS
        self.feed_control = "NEV"
        self.timestamps = "ABS"
        self.in_compliance = False  # the last reading's
        self.statistic = "MEAN"

    _record: Callable[[str], None]  # the instrument's log

    # -- status and errors ---------------------------------------------------------------------------
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

    def _cls(self, args: str) -> None:
        self._errors.clear()
        self.events = dict.fromkeys(REGISTERS, 0)
        self.esr = 0

    def _set_opc(self, args: str) -> None:
        self.esr |= ESR_OPC  # every command has completed by the time the next one is read

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
        self.sre = parse_integer(args, 0, 255) & ~STB_MSS  # MSS cannot be enabled

    def _get_sre(self, args: str) -> str:
        return str(self.sre)

    def _set_ese(self, args: str) -> None:
        self.ese = parse_integer(args, 0, 255)

    def _get_ese(self, args: str) -> str:
        return str(self.ese)

    def _esr(self, args: str) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    def _preset(self, args: str) -> None:
        self.enables = dict.fromkeys(REGISTERS, 0)

    def _set_enable(self, register: str, args: str) -> None:
        self.enables[register] = parse_integer(args, 0, 65535)

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
        self.buffer_points = parse_integer(args, 1, MAX_BUFFER_POINTS)
        self.buffer = []  # a new size empties the buffer
        self._update_condition()

    def _get_points(self, args: str) -> str:
        return str(self.buffer_points)

    def _actual_points(self, args: str) -> str:
        return str(len(self.buffer))

    def _set_feed(self, args: str) -> None:
        self._storage_idle()
        if parse_choice(args, {"SENS": "SENS", "SENSE": "SENS", "SENS1": "SENS", "SENSE1": "SENS"}) != "SENS":
            raise ScpiError(-221, "Settings conflict; only raw readings can be stored")

    def _get_feed(self, args: str) -> str:
        return "SENS"

    def _set_feed_control(self, args: str) -> None:
        self.feed_control = parse_choice(args, {"NEXT": "NEXT", "NEV": "NEV", "NEVER": "NEV"})
        self._record(f"! buffer storage {'on' if self.feed_control == 'NEXT' else 'off'}")

    def _get_feed_control(self, args: str) -> str:
        return self.feed_control

    def _set_timestamps(self, args: str) -> None:
        words = {"ABS": "ABS", "ABSOLUTE": "ABS", "DELT": "DELT", "DELTA": "DELT"}
        self.timestamps = parse_choice(args, words)

    def _get_timestamps(self, args: str) -> str:
        return self.timestamps

    def _trace_data(self, args: str) -> str:
        """The stored readings with the ``:FORM:ELEM`` elements; timestamps from the first one."""
        if not self.buffer:
            raise Stale(len(self.elements))
        times = [row[scpi.ELEMENTS.index("TIME")] for row in self.buffer]
        origin = [times[0], *times[:-1]] if self.timestamps == "DELT" else [times[0]] * len(times)
        out = []
        for row, t0 in zip(self.buffer, origin, strict=True):
            values = dict(zip(scpi.ELEMENTS, row, strict=True))
            values["TIME"] -= t0
            out.extend(scpi.format_number(values[e]) for e in self.elements)
        return ",".join(out)

    def _set_statistic(self, args: str) -> None:
        self.statistic = parse_choice(args, STATISTICS)

    def _get_statistic(self, args: str) -> str:
        return self.statistic

    def _statistic_data(self, args: str) -> str:
        """The selected statistic of the stored voltages, currents and resistances (in this order)."""
        if not self.buffer:
            raise Stale(3)
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


def status_handlers(register: str) -> dict:
    def set_enable(self: StatusAndStore, args: str) -> None:
        self._set_enable(register, args)

    def get_enable(self: StatusAndStore, args: str) -> str:
        return self._get_enable(register, args)

    def event(self: StatusAndStore, args: str) -> str:
        return self._event(register, args)

    def condition(self: StatusAndStore, args: str) -> str:
        return self._condition(register, args)

    root = f"STAT:{register}"
    return {
        f"{root}:ENAB": set_enable,
        f"{root}:ENAB?": get_enable,
        f"{root}?": event,
        f"{root}:EVEN?": event,
        f"{root}:COND?": condition,
    }
