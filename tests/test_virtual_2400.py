"""The virtual instrument answers a real client as a Keithley 2400 would.

pymeasure's own ``Keithley2400`` driver, unchanged, talks to an :class:`InstrumentServer` on a free
loopback port over PyVISA with the pure-Python ``@py`` backend: its buffered reading (status
registers, trace buffer, trigger count, buffer statistics) runs with no error, and a measurement with
no device connected is answered at once, as open terminals read on a SourceMeter. Every exchange is
bounded by a VISA timeout of a few seconds, so a missing reply fails instead of hanging.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from pymeasure.instruments.keithley import Keithley2400

from spinlearn.devices import mtj
from spinlearn.hardware import DeviceProfile, scpi
from spinlearn.hardware.virtual import InstrumentServer, VirtualInstrument

TIMEOUT_MS = 3000  # every VISA exchange; the virtual instrument answers in milliseconds
# A: about +-0.3 V across a 1 kOhm junction; short numbers, since the driver writes levels with %g
LEVELS = np.array([-150, -120, -90, -60, -30, 30, 60, 90, 120, 150]) * 1e-6
CHANNEL = 1
COMPLIANCE_V = 1.0
ELEMENTS = len(scpi.ELEMENTS)  # the driver asks for VOLT, CURR, RES, TIME, STAT
NO_ERROR = '0,"No error"'
OPEN_CIRCUIT = '-221,"Settings conflict; no channel closed, open-circuit reading"'


@contextlib.contextmanager
def keithley(**kwargs):
    """pymeasure's Keithley 2400 driver on a virtual instrument served from a thread; yields
    (driver, instrument)."""
    profile = DeviceProfile.from_dict({"pairs": 2}, "test")
    with InstrumentServer(VirtualInstrument(profile, **kwargs), 0) as server:
        smu = Keithley2400(
            server.resource,
            visa_library="@py",
            read_termination="\n",
            write_termination="\n",
            timeout=TIMEOUT_MS,
        )
        try:
            smu.reset()
            smu.clear()
            yield smu, server.instrument
        finally:
            smu.adapter.close()
    assert server.instrument.breakdowns == []


def errors_in(log: list[str]) -> list[str]:
    return [line for line in log if line.startswith("! error")]


def noise_free_voltages(instrument: VirtualInstrument, currents: np.ndarray) -> np.ndarray:
    i = instrument.channel_index[CHANNEL]
    pop = mtj.MTJPopulation(*(p[i : i + 1].expand(len(currents)) for p in instrument.devices))
    return mtj.voltage(torch.from_numpy(currents), pop).numpy()


def check_sweep(smu: Keithley2400, instrument: VirtualInstrument) -> None:
    """The buffer holds the 10-point sweep: the driver's data and statistics agree with the devices."""
    data = smu.buffer_data
    assert data.shape == (len(LEVELS) * ELEMENTS,)
    volts, amps, ohms, seconds, status = data.reshape(len(LEVELS), ELEMENTS).T
    np.testing.assert_allclose(amps, LEVELS, rtol=1e-6)  # every level, in order
    noise = instrument.params.read_noise_v
    np.testing.assert_allclose(volts, noise_free_voltages(instrument, LEVELS), rtol=0, atol=6 * noise)
    assert np.all(np.sign(volts) == np.sign(LEVELS)) and np.all(np.abs(volts) < COMPLIANCE_V)
    assert np.all(ohms == scpi.NAN_CODE)  # resistance is not measured: SCPI's not-a-number
    assert seconds[0] == 0 and np.all(np.diff(seconds) > 0)  # timestamps from the first stored reading
    words = status.astype(int)
    assert np.all(words & (scpi.STATUS_V_MEASURE | scpi.STATUS_I_SOURCE))
    assert not np.any(words & scpi.STATUS_COMPLIANCE)

    means = smu.means  # :CALC3:FORM MEAN;:CALC3:DATA?
    assert len(means) == 3
    np.testing.assert_allclose(means[:2], [volts.mean(), amps.mean()], rtol=1e-5, atol=1e-9)
    assert means[2] == scpi.NAN_CODE

    assert smu.check_errors() == []
    assert smu.ask("SYST:ERR?").strip() == NO_ERROR
    assert errors_in(instrument.log) == []
    assert f"! buffer full: {len(LEVELS)} readings" in instrument.log


# -- pymeasure's driver over VISA ----------------------------------------------------------------------
def test_pymeasure_runs_a_buffered_current_sweep_with_no_error():
    with keithley() as (smu, instrument):
        smu.source_mode = "current"
        smu.compliance_voltage = COMPLIANCE_V
        smu.write(f":ROUT:CLOS (@{CHANNEL})")  # the switch matrix connects one device
        smu.write(":SOUR:CURR:MODE LIST;:SOUR:LIST:CURR " + scpi.number_list(LEVELS))
        smu.config_buffer(len(LEVELS))  # :STAT:PRES;*CLS;*SRE 1;:STAT:MEAS:ENAB 512 ... :TRAC:FEED:CONT NEXT
        assert smu.buffer_points == len(LEVELS) and smu.trigger_count == len(LEVELS)
        assert not smu.is_buffer_full()
        smu.enable_source()
        smu.start_buffer()  # :INIT: one trigger runs the whole list
        smu.wait_for_buffer(timeout=5, interval=0.05)  # polls *STB? for MSB + MSS (65)
        assert smu.is_buffer_full()
        check_sweep(smu, instrument)
        assert smu.ask(":TRAC:FEED:CONT?").strip() == "NEV"  # a full buffer stops storing
        assert int(smu.ask(":TRAC:POIN:ACT?")) == len(LEVELS)


def test_pymeasure_fills_the_buffer_one_source_level_per_trigger():
    with keithley() as (smu, instrument):
        smu.source_mode = "current"
        smu.compliance_voltage = COMPLIANCE_V
        smu.write(f":ROUT:CLOS (@{CHANNEL})")
        smu.config_buffer(len(LEVELS))
        smu.trigger_count = 1  # one reading per :INIT; the buffer keeps filling across triggers
        smu.enable_source()
        for k, level in enumerate(LEVELS):
            assert not smu.is_buffer_full(), f"full after {k} of {len(LEVELS)} readings"
            smu.source_current = level
            smu.start_buffer()
        smu.wait_for_buffer(timeout=5, interval=0.05)
        check_sweep(smu, instrument)


def test_measuring_with_no_channel_closed_replies_at_once_with_the_compliance_voltage_and_an_error():
    with keithley() as (smu, instrument):
        smu.source_mode = "current"
        smu.compliance_voltage = 2.0
        smu.source_current = 1e-4
        smu.enable_source()
        assert smu.ask(":ROUT:CLOS?").strip() == "(@)"  # no device connected
        started = time.monotonic()
        reply = smu.ask(":MEAS:VOLT?")  # a missing reply would raise a VISA timeout after 3 s
        assert time.monotonic() - started < 1.0
        volts, amps, _, _, status = (float(x) for x in reply.split(","))
        assert volts == 2.0 and amps == 1e-4
        assert int(status) & scpi.STATUS_COMPLIANCE
        assert smu.ask("SYST:ERR?").strip() == OPEN_CIRCUIT
        assert smu.ask("SYST:ERR?").strip() == NO_ERROR

        smu.source_current = -1e-4
        assert smu.voltage == -2.0  # the driver's own measurement: the compliance, with the current's sign
        assert [e[0] for e in smu.check_errors()] == [-221]
        assert len(errors_in(instrument.log)) == 2


# -- the 2400's status and data-store semantics ---------------------------------------------------------
def ask(instrument: VirtualInstrument, line: str) -> str | None:
    return instrument.handle_line(line)


def stored_sweep(points: int) -> VirtualInstrument:
    """An instrument whose ``points``-reading buffer is set up (2400 style) but not yet triggered."""
    instrument = VirtualInstrument(DeviceProfile.from_dict({"pairs": 1}, "test"))
    for line in (
        ":ROUT:CLOS (@1);:SOUR:CURR 1e-4;:OUTP ON",
        f":TRAC:CLE;:TRAC:POIN {points};:TRIG:COUN {points}",
        ":TRAC:FEED SENS;:TRAC:FEED:CONT NEXT",
    ):
        assert ask(instrument, line) is None
    return instrument


def test_the_buffer_full_event_reaches_the_status_byte_only_through_its_enables():
    instrument = stored_sweep(4)
    assert ask(instrument, ":INIT;*STB?") == "0"  # full, but the event is not enabled
    assert int(ask(instrument, ":STAT:MEAS:COND?")) & 512
    assert ask(instrument, ":STAT:MEAS:ENAB 512;*STB?") == "1"  # measurement summary bit
    assert ask(instrument, "*SRE 1;*STB?") == "65"  # ... and the master summary status
    assert int(ask(instrument, ":STAT:MEAS?")) == 64 | 256 | 512  # reading and buffer available, full
    assert ask(instrument, ":STAT:MEAS?;*STB?") == "0;0"  # reading the events cleared them
    assert ask(instrument, ":TRAC:FEED:CONT?;:TRAC:POIN:ACT?") == "NEV;4"
    assert ask(instrument, "SYST:ERR?") == NO_ERROR


def test_a_storing_buffer_keeps_its_size_and_feed():
    instrument = stored_sweep(4)
    assert ask(instrument, ":TRAC:POIN 8;:TRAC:POIN?") == "4"
    assert ask(instrument, "SYST:ERR?") == '800,"Illegal with storage active"'
    assert ask(instrument, ":INIT;:TRAC:POIN 8;:TRAC:POIN?;:SYST:ERR?") == f"8;{NO_ERROR}"


def test_trigger_count_goes_to_2500_and_no_further():
    instrument = stored_sweep(4)
    assert ask(instrument, ":TRIG:COUN 2500;:TRIG:COUN?;:SYST:ERR?") == f"2500;{NO_ERROR}"
    assert ask(instrument, ":TRIG:COUN 2501;:TRIG:COUN?;:SYST:ERR?") == '2500;-222,"Data out of range"'
    reply = ask(instrument, ":ARM:COUN 2;:ARM:COUN?;:SYST:ERR?")
    assert reply == '1;-221,"Settings conflict; arm count x trigger count exceeds 2500"'
    assert ask(instrument, ":TRIG:COUN 1250;:ARM:COUN 2;:ARM:COUN?;:SYST:ERR?") == f"2;{NO_ERROR}"


def test_an_empty_buffer_answers_not_a_number_and_queues_data_stale():
    instrument = stored_sweep(4)
    nan = scpi.format_number(scpi.NAN_CODE)
    assert ask(instrument, ":CALC3:DATA?") == ",".join([nan] * 3)
    assert ask(instrument, ":TRAC:DATA?") == ",".join([nan] * ELEMENTS)
    stale = '-230,"Data corrupt or stale; the buffer is empty"'
    assert ask(instrument, "SYST:ERR?;:SYST:ERR?;:SYST:ERR?") == f"{stale};{stale};{NO_ERROR}"
