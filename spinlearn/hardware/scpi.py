"""The SCPI subset spoken between :mod:`~spinlearn.hardware.visa` and the virtual instrument.

It is the Keithley 2400 SourceMeter's command set for sourcing current and measuring voltage, plus
a switch matrix's route commands (Keithley 7001 style channel lists) that connect one device at a
time. A *scan list* pairs each point of a source list with a channel, so that one trigger sweeps a
whole minibatch of neuron and twin biases (on real hardware: a scanner card stepped by the
SourceMeter over the trigger link). Messages end with a line feed; ``;`` joins several commands on
a line; headers take the short or the long form in any case (``:SOUR`` = ``:source``).

==========================================  =====================================================
``*IDN?`` ``*RST`` ``*CLS`` ``*OPC?``        identity, reset (output off), clear errors, sync
``SYST:ERR?``                                next error: ``code,"message"`` (``0,"No error"``)
``:SOUR:FUNC CURR``                          source current (the only function supported)
``:SOUR:CURR:MODE FIX|LIST``                 fixed level or list sweep
``:SOUR:CURR[:LEV] <A>``                     fixed level
``:SOUR:CURR:RANG <A>``, ``...:RANG:AUTO``   source range
``:SOUR:LIST:CURR <A>,<A>,...``              the list (at most the instrument's list size)
``:SENS:FUNC "VOLT"``                        measure voltage
``:SENS:VOLT:PROT <V>``, ``?``               voltage compliance (the hardware clamp)
``:SENS:VOLT:NPLC <n>``, ``:SENS:VOLT:RANG`` integration time, measure range
``:FORM:ELEM VOLT,CURR,RES,TIME,STAT``       elements of each reading, in this order
``:TRIG:COUN <n>``                           readings per ``:READ?`` (= list length in LIST mode)
``:OUTP ON|OFF``, ``:OUTP?``                 output relay
``:ROUT:CLOS (@c)``, ``:ROUT:OPEN:ALL``      connect one channel / disconnect every channel
``:ROUT:SCAN (@c1,c2,...)``, ``?``           one channel per list point (``c1:c4`` = a range)
``:READ?``, ``:MEAS:VOLT?``                  trigger and return the readings
==========================================  =====================================================

A reading's status element is the Keithley 2400 status word; bit 3 (value 8) means the source was
in compliance. ``9.91E37`` is SCPI's not-a-number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np

NAN_CODE = 9.91e37
STATUS_COMPLIANCE = 1 << 3
STATUS_V_MEASURE = 1 << 11
STATUS_I_SOURCE = 1 << 15
ELEMENTS = ("VOLT", "CURR", "RES", "TIME", "STAT")
# The Keithley 2400's largest source current and voltage compliance: no device limit goes beyond.
MAX_CURRENT_A = 1.05
MAX_VOLTAGE_V = 210.0

# Long forms; the short form is the leading upper-case part. A header node may use either.
_MNEMONICS = (
    "ABORt AMPLitude ALL ARM AUTO AZERo BEEPer CATalog CLEar CLOSe COUNt CURRent DATA DELay ELEMents ERRor "
    "FETCh FORMat FUNCtion IMMediate INITiate LEVel LIST MEASure MODE NEXT NPLCycles OPEN OUTPut POINts "
    "PROTection RANGe READ RESistance ROUTe SCAN SENSe SMODe SOURce STATe STATus SYSTem TRIGger VOLTage"
).split()
_SHORT = {}
for _long in _MNEMONICS:
    _short = "".join(c for c in _long if c.isupper())
    _SHORT[_long.upper()] = _short
    _SHORT[_short] = _short
_OPTIONAL = {"LEV", "IMM", "AMPL"}  # [:LEVel][:IMMediate][:AMPLitude] of the source level
_SENSE_ROOTED = {"VOLT", "CURR", "RES", "FUNC"}  # [:SENSe]:VOLTage:... has an optional root


def channel_list(channels: Iterable[int]) -> str:
    """``(@1,2,7)``: a SCPI channel list."""
    return "(@" + ",".join(str(int(c)) for c in channels) + ")"


def parse_channel_list(text: str) -> list[int]:
    """Channels of ``(@1,2,5:8)``; raises ValueError for anything else."""
    text = text.strip()
    if not (text.startswith("(@") and text.endswith(")")):
        raise ValueError(f"not a channel list: {text[:40]!r}")
    out: list[int] = []
    for item in text[2:-1].split(","):
        first, sep, last = item.strip().partition(":")
        lo = int(first)
        hi = int(last) if sep else lo
        if lo < 1 or hi < lo or hi - lo > 100_000:
            raise ValueError(f"bad channel range {item.strip()!r}")
        out.extend(range(lo, hi + 1))
    return out


def number_list(values: Iterable[float]) -> str:
    """Comma-separated numbers with 8 significant digits (finer than any source's resolution)."""
    return ",".join(f"{v:.7E}" for v in values)


def as_written(values: np.ndarray) -> np.ndarray:
    """``values`` rounded as :func:`number_list` writes them: safety checks must see the sent numbers."""
    return np.array([float(f"{v:.7E}") for v in values.tolist()], dtype=np.float64)


def split_commands(line: str) -> list[str]:
    """The commands of one message line: split at ``;`` outside quotes."""
    parts, current, quote = [], [], None
    for ch in line:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == ";":
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def normalise_header(header: str) -> str:
    """The canonical short form of a header: ``:source:current:level?`` -> ``SOUR:CURR?``.

    Common commands (``*IDN?``) are upper-cased; nodes outside the subset are kept upper-cased (they
    fail the look-up, which gives an "undefined header" error).
    """
    header = header.strip()
    query = header.endswith("?")
    if query:
        header = header[:-1]
    if header.startswith("*"):
        return header.upper() + ("?" if query else "")
    nodes = []
    for raw in header.lstrip(":").split(":"):
        node = raw.upper().rstrip("0123456789") or raw.upper()  # SOUR1 -> SOUR
        node = _SHORT.get(node, node)
        if node not in _OPTIONAL:
            nodes.append(node)
    if nodes and nodes[0] in _SENSE_ROOTED:
        nodes.insert(0, "SENS")
    if nodes[:2] == ["OUTP", "STAT"] or nodes[-2:] == ["ERR", "NEXT"]:
        nodes.pop(1 if nodes[0] == "OUTP" else -1)
    return ":".join(nodes) + ("?" if query else "")


def format_number(value: float) -> str:
    """One reading element as the Keithley 2400 prints it (``+1.234567E-01``; NaN as 9.91E37)."""
    if not math.isfinite(value):
        value = NAN_CODE
    return f"{value:+.6E}"


# ---------------------------------------------------------------------------------------------------
# The instrument's side: headers to handlers, arguments to values, errors to the error queue

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


class ScpiError(Exception):
    """A command the instrument rejects: pushed to the error queue as ``code,"message"``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f'{code},"{message}"')
        self.code = code


def parse_number(text: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScpiError(-104, "Data type error") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ScpiError(-222, "Data out of range")
    return value


def parse_integer(text: str, lo: float, hi: float) -> int:
    value = parse_number(text, lo, hi)
    if not value.is_integer():
        raise ScpiError(-104, "Data type error")
    return int(value)


def parse_choice(text: str, words: dict[str, str]) -> str:
    """The short form of a named parameter (``NEVER`` -> ``NEV``) among ``words`` (long and short)."""
    word = words.get(text.strip().strip("'\"").upper())
    if word is None:
        raise ScpiError(-224, "Illegal parameter value")
    return word


def header_key(header: str) -> str:
    """The handler key of a header: :func:`normalise_header`, plus the long forms of the status
    and data-store nodes and the suffix of ``CALCulate<n>`` (``:calculate3:data?`` -> ``CALC3:DATA?``)."""
    key = normalise_header(header)
    if key.startswith("*"):
        return key
    query = key.endswith("?")
    nodes = [_LONG_FORMS.get(node, node) for node in key.removesuffix("?").split(":")]
    if nodes[0] == "CALC":
        match = _CALC.match(header.strip())
        nodes[0] += (match.group(1) if match else "") or "1"
    return ":".join(nodes) + ("?" if query else "")


def parse_boolean(text: str) -> bool:
    word = text.strip().upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise ScpiError(-224, "Illegal parameter value")
