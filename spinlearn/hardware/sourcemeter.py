"""A Keithley 2400-compatible SourceMeter and a switch matrix over VISA: the instrument layer.

PyVISA with the pure-Python ``@py`` backend by default. pymeasure's ``Keithley2400`` driver does
identity, reset, source function, source range, compliance, integration time and output; the list
sweep with a scan list (one channel per bias point, :mod:`.scpi`) goes through its adapter, one
round trip per trigger of up to ``max_list_points`` points. Timeouts are retried after
re-synchronising the instrument (``*OPC?``); a wrong or garbled answer stops at once. What may be
asked of it is checked a layer above, by :class:`~.bench.Bench`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from spinlearn.extras import require
from spinlearn.hardware import scpi
from spinlearn.hardware.errors import InstrumentError
from spinlearn.hardware.profile import DeviceProfile, InstrumentSettings

SWEEP_ELEMENTS = ("VOLT", "STAT")  # per reading: the voltage and the status word (compliance bit)
MAX_ERRORS_READ = 10  # an instrument that never empties its error queue must not hang the client
MAX_STATUS = 1 << 24


class SourceMeter:
    """A Keithley 2400-compatible SourceMeter with a switch matrix, reached through VISA.

    ``resource`` is a VISA resource name (``GPIB0::24::INSTR``, ``TCPIP::host::port::SOCKET``);
    ``visa_library`` the PyVISA backend (``@py``: pyvisa-py; ``file.yaml@sim``: pyvisa-sim).
    Opening checks the identity, resets the instrument and configures current sourcing with the
    output off. Every round trip's wall time is added to :attr:`busy_s`.
    """

    def __init__(
        self,
        resource: str,
        settings: InstrumentSettings,
        visa_library: str = "@py",
        source_range_a: float = 1e-3,
        compliance_v: float = 1.0,
    ) -> None:
        pyvisa = require("pyvisa", "lab", "an instrument")  # deferred: a simulated run never pays for it
        require("pymeasure", "lab", "an instrument")

        self.resource = resource
        self.settings = settings
        self.visa_library = visa_library
        self._pyvisa = pyvisa
        self.smu = None
        self.output_on = False
        self.compliance_v = compliance_v
        self.round_trips = 0
        self.readings = 0
        self.busy_s = 0.0
        self.identity = ""
        self._configured = False  # no switching commands go to an instrument that failed its identity check
        try:
            self._open(source_range_a, compliance_v)
        except BaseException:
            self.close()
            raise

    @classmethod
    def for_profile(cls, resource: str, profile: DeviceProfile, visa_library: str = "@py") -> SourceMeter:
        """Open ``resource`` ranged for the profile's largest current, clamped at its smallest compliance."""
        devices = profile.devices
        return cls(
            resource,
            profile.instrument,
            visa_library,
            source_range_a=max(e.limits.max_current_a for e in devices),
            compliance_v=min(e.limits.compliance_v for e in devices),
        )

    def _open(self, source_range_a: float, compliance_v: float) -> None:
        from pymeasure.instruments.keithley import Keithley2400

        try:
            self.smu = Keithley2400(
                self.resource,
                visa_library=self.visa_library,
                read_termination="\n",
                write_termination="\n",
                timeout=int(self.settings.timeout_s * 1000),
            )
        except Exception as exc:  # pyvisa raises many kinds here: name, library, socket errors
            raise InstrumentError(f"cannot open instrument {self.resource}: {_reason(exc)}") from None
        self.identity = self._call("*IDN?", lambda: self.smu.id).strip()
        fields = [f.strip() for f in self.identity.split(",")]
        if len(fields) < 4 or not self.identity.isprintable() or self.settings.model not in fields[1]:
            raise InstrumentError(
                f"{self.resource} answered *IDN? with {self.identity[:80]!r}: not a model "
                f"{self.settings.model} source-measure unit (instrument.model in the device profile)"
            )
        smu = self.smu
        self._call("*RST", smu.reset)  # output off, known state
        self._configured = True
        self._call("*CLS", smu.clear)
        self._call(":SOUR:FUNC", lambda: setattr(smu, "source_mode", "current"))
        self._call(":SOUR:CURR:RANG", lambda: setattr(smu, "source_current_range", source_range_a))
        self._call(":SENS:VOLT:PROT", lambda: setattr(smu, "compliance_voltage", compliance_v))
        self._call(":SENS:VOLT:NPLC", lambda: setattr(smu, "voltage_nplc", self.settings.nplc))
        self._call(":OUTP", lambda: setattr(smu, "source_enabled", False))
        self._call(":SENS:FUNC", lambda: smu.write(":SENS:FUNC 'VOLT'"))
        self._call(":FORM:ELEM", lambda: smu.write(":FORM:ELEM " + ",".join(SWEEP_ELEMENTS)))
        self._call(":SOUR:CURR:MODE", lambda: smu.write(":SOUR:CURR:MODE LIST"))
        errors = self.errors()
        if errors:
            raise InstrumentError(f"{self.resource} rejected its set-up: {errors[0]}")
        self.compliance_v = compliance_v

    # -- low level ---------------------------------------------------------------------------------
    def _call(self, what: str, fn, retryable: bool = False):
        """Run one VISA exchange; a VISA failure becomes an InstrumentError naming ``what``
        (a timeout of a ``retryable`` exchange: ``_Timeout``, for :meth:`ask` to retry)."""
        started = time.perf_counter()
        try:
            return fn()
        except self._pyvisa.errors.VisaIOError as exc:
            if exc.error_code == self._pyvisa.constants.StatusCode.error_timeout:
                if retryable:
                    raise _Timeout(what) from None
                raise InstrumentError(
                    f"no answer from {self.resource} to {what} within {self.settings.timeout_s:g} s; "
                    "check the connection, the message terminations (line feed) and instrument.timeout_s"
                ) from None
            raise InstrumentError(f"{self.resource}: {what} failed: {_reason(exc)}") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise InstrumentError(f"{self.resource}: {what} failed: {_reason(exc)}") from None
        finally:
            self.busy_s += time.perf_counter() - started
            self.round_trips += 1

    def errors(self) -> list[str]:
        """Drain the instrument's error queue (at most ``MAX_ERRORS_READ`` entries)."""
        out = []
        for _ in range(MAX_ERRORS_READ):
            answer = self._call("SYST:ERR?", lambda: self.smu.ask("SYST:ERR?")).strip()
            code, _, message = answer.partition(",")
            try:
                if int(float(code)) == 0:
                    return out
            except ValueError:
                raise InstrumentError(
                    f"garbled answer from {self.resource} to SYST:ERR?: {answer[:80]!r}"
                ) from None
            out.append(f"error {int(float(code))} {message.strip()}")
        return out

    def ask(self, command: str, what: str) -> str:
        """``command`` (ending in a query) and its answer; timeouts retried after a resync."""
        tries = self.settings.retries + 1
        for attempt in range(tries):
            try:
                return self._call(what, lambda: self.smu.ask(command), retryable=True)
            except _Timeout:
                if attempt + 1 < tries:
                    self._resync(what)
        detail = self._pending_error()
        raise InstrumentError(
            f"no answer from {self.resource} to {what} within {self.settings.timeout_s:g} s "
            f"({tries} tries){detail}; check the connection and instrument.timeout_s"
        )

    def _resync(self, what: str) -> None:
        """Drop late answers: ask ``*OPC?`` and read until its ``1`` arrives."""
        try:
            self._call("*OPC?", lambda: self.smu.write("*OPC?"), retryable=True)
            for _ in range(4):
                if self._call("*OPC?", self.smu.read, retryable=True).strip() == "1":
                    return
        except _Timeout:
            pass
        raise InstrumentError(f"{self.resource} stopped answering (after {what}); check the connection")

    def _pending_error(self) -> str:
        try:
            errors = self.errors()
        except InstrumentError:
            return ""
        return f" (instrument reports {errors[0]})" if errors else ""

    # -- sweeps --------------------------------------------------------------------------------------
    def sweep(
        self, channels: list[int], currents: list[float], compliance_v: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """One triggered list sweep: point ``k`` biases ``channels[k]`` at ``currents[k]`` amperes.

        Returns the voltages (V) and the compliance flags. The caller guarantees the limits (see
        :class:`Bench`); ``len(currents) <= max_list_points``.
        """
        n = len(currents)
        if not 0 < n <= self.settings.max_list_points or len(channels) != n:
            raise ValueError(f"a sweep takes 1..{self.settings.max_list_points} points, one channel each")
        head = []
        if compliance_v != self.compliance_v:
            head.append(f":SENS:VOLT:PROT {compliance_v:.6g}")
        if not self.output_on:
            head.append(":OUTP ON")
        command = ";".join(
            [
                *head,
                f":ROUT:SCAN {scpi.channel_list(channels)}",
                f":SOUR:LIST:CURR {scpi.number_list(currents)}",
                f":TRIG:COUN {n}",
                ":READ?",
            ]
        )
        self.compliance_v = compliance_v
        self.output_on = True
        answer = self.ask(command, f":READ? ({n} points)")
        volts, status = self._parse(answer, n)
        self.readings += n
        return volts, (status.astype(np.int64) & scpi.STATUS_COMPLIANCE) != 0

    def _parse(self, answer: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        fields = answer.strip().split(",")
        width = len(SWEEP_ELEMENTS)

        def garbled(why: str) -> InstrumentError:
            snippet = answer if len(answer) <= 60 else answer[:57] + "..."
            return InstrumentError(
                f"garbled answer from {self.resource} to :READ? ({n} readings of {'/'.join(SWEEP_ELEMENTS)} "
                f"expected): {why}: {snippet!r}"
            )

        if len(fields) != n * width:
            raise garbled(f"{len(fields)} values instead of {n * width}")
        try:
            values = np.array([float(f) for f in fields], dtype=np.float64).reshape(n, width)
        except ValueError:
            bad = next(f for f in fields if not _is_number(f))
            raise garbled(f"{bad[:20]!r} is not a number") from None
        volts, status = values[:, 0], values[:, 1]
        if not (np.isfinite(volts).all() and (np.abs(volts) < 1e37).all()):
            raise garbled("not-a-number readings")
        if not ((status >= 0) & (status < MAX_STATUS) & (status == np.round(status))).all():
            raise garbled("status words out of range")
        return volts, status

    def output(self, on: bool) -> None:
        self._call(":OUTP", lambda: setattr(self.smu, "source_enabled", on))
        self.output_on = on

    def safe_off(self) -> None:
        """Switch the output off and open every channel; best effort (used on the way out of errors)."""
        if self.smu is None or not self._configured:
            return
        try:  # the leading line feed ends any message an interrupt cut short, so this one parses
            self.smu.write("\n:OUTP OFF;:ROUT:OPEN:ALL")
        except Exception:  # the connection may be what failed; nothing more can be done from here
            pass
        self.output_on = False

    def close(self) -> None:
        if self.smu is None:
            return
        self.safe_off()
        try:
            self.smu.adapter.close()
        except Exception:
            pass
        self.smu = None

    def settings_record(self) -> dict[str, Any]:
        return {
            "source_function": "current",
            "sense_function": "voltage",
            "compliance_v": self.compliance_v,
            "nplc": self.settings.nplc,
            "max_list_points": self.settings.max_list_points,
            "reading_elements": list(SWEEP_ELEMENTS),
            "timeout_s": self.settings.timeout_s,
            "retries": self.settings.retries,
        }


class _Timeout(Exception):
    """A VISA read timed out (retried by :meth:`SourceMeter.ask`)."""


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
