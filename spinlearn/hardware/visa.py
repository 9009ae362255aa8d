"""VisaBackend: train through a real source-measure unit over PyVISA, inside hard safety limits.

Three layers, each usable alone:

* :class:`SourceMeter`: a Keithley 2400-compatible SourceMeter and a switch matrix over VISA
  (PyVISA with the pure-Python ``@py`` backend by default). pymeasure's ``Keithley2400`` driver
  does identity, reset, source function, source range, compliance, integration time and output;
  the list sweep with a scan list (one channel per bias point, :mod:`.scpi`) goes through its
  adapter, one round trip per trigger of up to ``max_list_points`` points. Timeouts are retried
  after re-synchronising the instrument (``*OPC?``); a wrong or garbled answer stops at once.
* :class:`Bench`: the devices of a :class:`~.profile.DeviceProfile` behind a SourceMeter. Every
  request is checked against the profile *before a command is written*: non-finite currents,
  ``|I| > max_current_a``, and (for fitted devices) a predicted ``|V(I)| > compliance_v`` are
  refused with :class:`~.errors.SafetyLimitError`. The compliance of each sweep is the smallest of
  its devices'. A reading in compliance or beyond ``max_voltage_v`` stops the run.
* :class:`VisaBackend`: the :class:`~.backend.Backend` protocol on a Bench; a minibatch of neuron
  and twin biases goes out in ``ceil(2 * batch * width / max_list_points)`` round trips.

The output is switched off on every error, on :meth:`VisaBackend.close`, on leaving a ``with``
block and on Ctrl-C (the runner closes every backend of a run in a ``finally``).

AFD calibration and the limits: :class:`~spinlearn.learning.afd.TwinCalibration` sweeps
``I_0 +/- calibration_range * I_s`` (+/-3.2 mA at the defaults), beyond a real junction's
breakdown. The grid is not clipped silently (the interpolation would then be wrong without a
word); the sweep is refused, and the message names the ``--set afd.calibration_range=`` that fits
the profile.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from spinlearn.devices import mtj
from spinlearn.devices.mtj import MTJParams
from spinlearn.energy import Ledger
from spinlearn.errors import ConfigError
from spinlearn.hardware import scpi
from spinlearn.hardware.errors import InstrumentError, SafetyLimitError
from spinlearn.hardware.profile import DeviceProfile, InstrumentSettings

SWEEP_ELEMENTS = ("VOLT", "STAT")  # per reading: the voltage and the status word (compliance bit)
MAX_ERRORS_READ = 10  # an instrument that never empties its error queue must not hang the client
MAX_STATUS = 1 << 24


def _si(value: float, unit: str) -> str:
    """``0.0032, 'A'`` -> ``3.2 mA``."""
    if not math.isfinite(value):
        return f"{value} {unit}"
    for scale, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n")):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


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
        import pyvisa  # deferred: a simulated run never pays for the VISA stack

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


class Bench:
    """The devices of ``profile`` behind ``meter``; every request checked before it is written.

    Devices are indexed as in :attr:`DeviceProfile.devices` (pair ``k``: neuron ``2k``, twin
    ``2k + 1``). With ``allow_compliance`` (calibration sweeps) readings in compliance are returned
    flagged instead of stopping the run. Without a ``meter`` it only checks requests
    (:meth:`violations`, :meth:`safe_range`).
    """

    def __init__(
        self, meter: SourceMeter | None, profile: DeviceProfile, *, allow_compliance: bool = False
    ) -> None:
        self.meter = meter
        self.profile = profile
        self.allow_compliance = allow_compliance
        devices = profile.devices
        self.channels = np.array([e.channel for e in devices], dtype=np.int64)
        self.max_current = np.array([e.limits.max_current_a for e in devices])
        self.max_voltage = np.array([e.limits.max_voltage_v for e in devices])
        self.compliance = np.array([e.limits.compliance_v for e in devices])
        self.fits = (
            mtj.MTJPopulation(
                *(
                    torch.tensor([getattr(e.fit, f) for e in devices], dtype=torch.float64)
                    for f in mtj.MTJPopulation._fields
                )
            )
            if profile.fitted
            else None
        )
        self.names = [f"pair {k // 2} {'twin' if k % 2 else 'neuron'}" for k in range(len(devices))]

    def label(self, index: int) -> str:
        return f"{self.names[index]} (channel {self.channels[index]})"

    def violations(self, index: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Per request: 0 fine, 1 not finite, 2 beyond max_current_a, 3 predicted beyond compliance."""
        code = np.zeros(current.shape, dtype=np.int64)
        finite = np.isfinite(current)
        code[~finite] = 1
        code[finite & (np.abs(np.where(finite, current, 0.0)) > self.max_current[index])] = 2
        if self.fits is not None:
            ok = code == 0
            if ok.any():
                idx = torch.from_numpy(index[ok])
                pop = mtj.MTJPopulation(*(p[idx] for p in self.fits))
                v = mtj.voltage(torch.from_numpy(current[ok]), pop).numpy()
                over = np.zeros_like(ok)
                over[ok] = np.abs(v) > self.compliance[index[ok]]
                code[over] = 3
        return code

    def check(self, index: np.ndarray, current: np.ndarray, hint: Callable[[], str] | None = None) -> None:
        """Raise SafetyLimitError for the first request beyond the profile (nothing is written)."""
        code = self.violations(index, current)
        if not code.any():
            return
        k = int(np.flatnonzero(code)[0])
        d, i = int(index[k]), float(current[k])
        where, source = self.label(d), f"(device profile {self.profile.source})"
        if code[k] == 1:
            why = f"non-finite current ({i}) requested for {where} {source}"
        elif code[k] == 2:
            limit = _si(self.max_current[d], "A")
            why = f"{_si(i, 'A')} requested through {where} is beyond its max_current_a {limit} {source}"
        else:
            v = float(
                mtj.voltage(
                    torch.tensor([i], dtype=torch.float64),
                    mtj.MTJPopulation(*(p[d : d + 1] for p in self.fits)),
                )
            )
            why = (
                f"{_si(i, 'A')} requested through {where}: its fit predicts {v:+.3g} V, beyond its "
                f"compliance_v {self.compliance[d]:g} V {source}"
            )
        raise SafetyLimitError(f"refused before writing to the instrument: {why}{hint() if hint else ''}")

    def measure(
        self, index: np.ndarray, current: np.ndarray, hint: Callable[[], str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Voltages (V) and compliance flags of device ``index[k]`` biased at ``current[k]`` (A).

        The whole request is checked first; then it goes out in sweeps of ``max_list_points``.
        Any failure switches the output off before it propagates.
        """
        index = np.asarray(index, dtype=np.int64).ravel()
        current = scpi.as_written(np.asarray(current, dtype=np.float64).ravel())  # check what is sent
        try:
            self.check(index, current, hint)
            step = self.meter.settings.max_list_points
            volts = np.empty_like(current)
            clamped = np.zeros(current.shape, dtype=bool)
            for start in range(0, len(current), step):
                part = slice(start, start + step)
                compliance = float(self.compliance[index[part]].min())
                v, c = self.meter.sweep(
                    self.channels[index[part]].tolist(), current[part].tolist(), compliance
                )
                volts[part], clamped[part] = v, c
                self._check_reading(index[part], current[part], v, c)
            return volts, clamped
        except BaseException:
            self.meter.safe_off()
            raise

    def _check_reading(
        self, index: np.ndarray, current: np.ndarray, v: np.ndarray, clamped: np.ndarray
    ) -> None:
        over = np.abs(v) > self.max_voltage[index]
        if over.any():
            k = int(np.flatnonzero(over)[0])
            raise InstrumentError(
                f"{self.label(int(index[k]))} read {v[k]:+.4g} V at {_si(current[k], 'A')}, beyond its "
                f"max_voltage_v {self.max_voltage[index[k]]:g} V: stopped"
            )
        if clamped.any() and not self.allow_compliance:
            k = int(np.flatnonzero(clamped)[0])
            raise InstrumentError(
                f"{self.label(int(index[k]))} went into compliance ({v[k]:+.4g} V) at "
                f"{_si(current[k], 'A')}: the reading is not a measurement; lower the current (train.lr) "
                "or recalibrate the profile"
            )

    def safe_range(self, index: np.ndarray, centre_a: float, scale_a: float) -> float:
        """Largest ``r`` (2 decimals, rounded down) keeping every device of ``index`` safe at
        ``centre +/- r scale``."""

        def fits(r: float) -> bool:
            grid = np.array([centre_a - r * scale_a, centre_a + r * scale_a])
            idx = np.repeat(index, 2)
            return not self.violations(idx, np.tile(grid, len(index))).any()

        lo, hi = 0.0, 1000.0
        if not fits(lo):
            return 0.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return math.floor(lo * 100) / 100

    def close(self) -> None:
        if self.meter is not None:
            self.meter.close()


class VisaBackend:
    """The Backend protocol on an instrument: neuron/twin pairs of a device profile, over VISA.

    ``params`` sets the current and voltage scales of the layers (the profile's fitted nominal
    device, when it has one). Reads come back as ``dtype`` tensors on ``tensor_device``.
    """

    def __init__(
        self,
        bench: Bench,
        params: MTJParams,
        *,
        tensor_device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.bench = bench
        self.params = params
        self.tensor_device = torch.device(tensor_device)
        self.dtype = dtype
        self.ledger: Ledger | None = None
        self._groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._next_pair = 0
        self._reads = 0

    @classmethod
    def open(
        cls,
        resource: str,
        profile: DeviceProfile,
        params: MTJParams | None = None,
        *,
        visa_library: str = "@py",
        tensor_device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> VisaBackend:
        """Connect to ``resource`` and check it; ``params`` default to the profile's nominal device."""
        if params is None:
            params = profile.nominal or MTJParams()
        meter = SourceMeter.for_profile(resource, profile, visa_library)
        return cls(Bench(meter, profile), params, tensor_device=tensor_device, dtype=dtype)

    @classmethod
    def from_run(cls, device_cfg, ctx, dtype: torch.dtype = torch.float32) -> VisaBackend:
        """The backend of a ``spinlearn run --backend visa --resource RES`` (``device.profile`` needed)."""
        if not ctx.resource:
            raise ConfigError("--backend visa needs --resource (a VISA resource name)")
        if not device_cfg.profile:
            raise ConfigError(
                "--backend visa needs a device profile with the devices' limits: --set device.profile=FILE "
                "(`spinlearn calibrate` writes one)"
            )
        profile = DeviceProfile.load(device_cfg.profile)
        params = profile.nominal or device_cfg.mtj().params
        return cls.open(
            ctx.resource,
            profile,
            params,
            visa_library=ctx.visa_library,
            tensor_device=ctx.device,
            dtype=dtype,
        )

    # -- Backend protocol ----------------------------------------------------------------------------
    def allocate(self, group: str, n: int) -> None:
        if group in self._groups:
            raise ValueError(f"device group {group!r} is already allocated")
        self.bench.profile.require_pairs(self._next_pair + n)
        pairs = np.arange(self._next_pair, self._next_pair + n)
        self._groups[group] = (2 * pairs, 2 * pairs + 1)
        for j, (a, b) in enumerate(zip(2 * pairs, 2 * pairs + 1, strict=True)):
            self.bench.names[a], self.bench.names[b] = f"{group} neuron {j}", f"{group} twin {j}"
        self._next_pair += n

    def _indices(self, group: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self._groups[group]
        except KeyError:
            raise KeyError(f"device group {group!r} was never allocated") from None

    def read(self, group: str, current_a: torch.Tensor, *, twin: bool = False) -> torch.Tensor:
        index = self._indices(group)[1 if twin else 0]
        return self._measure(group, index, current_a)

    def read_pair(
        self, group: str, current_a: torch.Tensor, delta_i_a: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        neurons, twins = self._indices(group)
        both = torch.cat((current_a, current_a + delta_i_a), dim=-1)
        return self._measure(group, np.concatenate((neurons, twins)), both).tensor_split(2, dim=-1)

    def _measure(self, group: str, index: np.ndarray, current_a: torch.Tensor) -> torch.Tensor:
        if current_a.shape[-1] != len(index):
            raise ValueError(
                f"group {group!r} has {len(index)} devices, got currents of shape {tuple(current_a.shape)}"
            )
        flat = current_a.detach().to("cpu", torch.float64).reshape(-1, len(index)).numpy()
        rows = flat.shape[0]
        volts, _ = self.bench.measure(np.tile(index, rows), flat.ravel(), lambda: self._hint(group))
        self._reads += volts.size
        v = torch.from_numpy(volts).reshape(current_a.shape).to(self.tensor_device, self.dtype)
        if self.ledger is not None:
            self.ledger.device_reads(current_a, v)
        return v

    def _hint(self, group: str) -> str:
        index = np.concatenate(self._indices(group))
        p = self.params
        r = self.bench.safe_range(index, p.i0_a, p.current_scale_a)
        return (
            "; AFD calibration sweeps I_0 +/- afd.calibration_range x I_s: "
            f"--set afd.calibration_range={r:g} or less fits this profile; "
            "in training, lower train.lr or raise the profile's limits"
        )

    @property
    def measurement_count(self) -> int:
        return self._reads

    def state_dict(self) -> dict[str, Any]:
        """The counters a resumed run carries on (for checkpoints); the devices are on the bench."""
        meter = self.bench.meter
        return {
            "reads": self._reads,
            "readings": meter.readings,
            "round_trips": meter.round_trips,
            "busy_s": meter.busy_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        meter = self.bench.meter
        self._reads = state["reads"]
        meter.readings, meter.round_trips, meter.busy_s = (
            state["readings"],
            state["round_trips"],
            state["busy_s"],
        )

    def instrument_figures(self) -> dict[str, float]:
        """Readings taken through the instrument and the wall time spent waiting on it (s)."""
        meter = self.bench.meter
        return {
            "instrument_measurements": float(meter.readings),
            "instrument_time_s": round(meter.busy_s, 3),
            "instrument_round_trips": float(meter.round_trips),
        }

    def describe(self) -> dict[str, Any]:
        meter, profile = self.bench.meter, self.bench.profile
        return {
            "kind": "visa",
            "resource": meter.resource,
            "visa_library": meter.visa_library,
            "identity": meter.identity,
            "settings": meter.settings_record(),
            "profile": profile.source,
            "limits": {
                "max_current_a": float(self.bench.max_current.min()),
                "max_voltage_v": float(self.bench.max_voltage.min()),
                "compliance_v": float(self.bench.compliance.min()),
            },
            "fitted_profile": profile.fitted,
            "groups": {
                name: {
                    "neuron_channels": self.bench.channels[a].tolist(),
                    "twin_channels": self.bench.channels[b].tolist(),
                }
                for name, (a, b) in self._groups.items()
            },
            **self.instrument_figures(),
        }

    def close(self) -> None:
        self.bench.close()

    def __enter__(self) -> VisaBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
