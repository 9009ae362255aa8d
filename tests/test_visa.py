"""Device-in-the-loop over VISA: virtual instrument, safety limits, calibration, wrong answers.

Every test starts and stops its own instrument (a thread here, or ``spinlearn instrument serve`` in
a subprocess) on a free loopback port; every wait is bounded, so nothing hangs and nothing is left
running. The client side is the real path: PyVISA + pyvisa-py over TCP, pymeasure's Keithley 2400.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import select
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from cli_helpers import spinlearn

from spinlearn import config
from spinlearn.errors import ConfigError, UserInputError
from spinlearn.experiments import get
from spinlearn.experiments.common import DeviceConfig, make_backend
from spinlearn.experiments.registry import RunContext
from spinlearn.hardware import DeviceProfile, InstrumentError, SafetyLimitError, SimulatedBackend, VisaBackend
from spinlearn.hardware.calibration import calibrate
from spinlearn.hardware.virtual import InstrumentServer, VirtualInstrument
from spinlearn.runner import run_experiment

CLI_TIMEOUT_S = 150
FAST = {"instrument": {"timeout_s": 1.0, "retries": 1}}  # a fault costs seconds, not minutes


# -- helpers -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def serve_cli(tmp_path, *args):
    """``spinlearn instrument serve --port 0`` in a subprocess; yields (resource, log file)."""
    log = tmp_path / "instrument.log"
    cmd = [sys.executable, "-m", "spinlearn", "instrument", "serve", "--port", "0", "--log", str(log)]
    proc = subprocess.Popen([*cmd, "--lifetime-s", "600", *args], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "instrument serve printed nothing within 60 s"
        line = proc.stdout.readline()
        match = re.match(r"listening on (TCPIP::127\.0\.0\.1::\d+::SOCKET)", line)
        assert match, line
        yield match.group(1), log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
    assert proc.returncode == 0  # SIGTERM is a clean stop
    assert proc.stdout.read().strip().endswith("stopped")
    proc.stdout.close()


@contextlib.contextmanager
def bench(pairs: int = 8, *, profile: DeviceProfile | None = None, **kwargs):
    """A virtual instrument served from a thread; yields (server, instrument)."""
    profile = profile or DeviceProfile.from_dict({"pairs": pairs, **FAST}, "test")
    with InstrumentServer(VirtualInstrument(profile, **kwargs)) as server:
        yield server, server.instrument
    assert server.instrument.breakdowns == []


def applied(log: list[str]) -> list[tuple[int, float]]:
    """(channel, current) of every bias the instrument was sent, read back from its command log.

    Parsed with plain regular expressions from the text on the wire, independently of the client.
    """
    out = []
    for line in log:
        if not line.startswith("> "):
            continue
        assert not re.search(r"SOUR(CE)?:CURR(ENT)?(:LEV\w*)? ", line, re.I), line  # no fixed levels are used
        currents = re.search(r":SOUR:LIST:CURR ([^;]*)", line)
        if currents:
            channels = re.search(r":ROUT:SCAN \(@([\d,]*)\)", line).group(1).split(",")
            values = currents.group(1).split(",")
            assert len(channels) == len(values)
            out.extend((int(c), float(v)) for c, v in zip(channels, values, strict=True))
    return out


def readings_in(log: list[str]) -> int:
    return sum(int(m.group(1)) for line in log if (m := re.search(r":TRIG:COUN (\d+);:READ\?", line)))


def output_events(log: list[str]) -> list[str]:
    return [line for line in log if line in ("! output on", "! output off")]


def write_profile(path, profile: DeviceProfile):
    path.write_text(profile.to_yaml())
    return str(path)


# -- profile and SCPI plumbing --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, message",
    [
        ({"limits": {"max_current_a": -1}}, "limits.max_current_a = -1.0: must be > 0"),
        (
            {"limits": {"compliance_v": 2.0, "max_voltage_v": 1.0}},
            "compliance_v = 2: must be <= max_voltage_v",
        ),
        ({"limits": {"max_current_a": float("nan")}}, "expected a finite number"),
        ({"limitz": {}}, "unknown key 'limitz'"),
        (
            {"pairs": [{"neuron": {"channel": 1}, "twin": {"channel": 1}}]},
            "channel 1 is used by more than one",
        ),
        ({"pairs": [{"neuron": {"channel": 0}, "twin": {"channel": 2}}]}, "pairs[0].neuron: channel = 0"),
        ({"pairs": [{"neuron": {"channel": 1}}]}, "pairs[0] needs both a neuron and a twin"),
        ({"instrument": {"max_list_points": 0}}, "instrument.max_list_points = 0"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        DeviceProfile.from_dict(data, "p.yaml")
    assert message in str(err.value) and "p.yaml" in str(err.value)


def test_profile_round_trips_through_yaml_with_per_device_limits(tmp_path):
    data = {
        "limits": {"max_current_a": 1e-3, "max_voltage_v": 1.2, "compliance_v": 1.0},
        "pairs": [{"neuron": {"channel": 7}, "twin": {"channel": 9, "max_current_a": 5e-4}}],
    }
    profile = DeviceProfile.from_dict(data, "p")
    again = DeviceProfile.load(write_profile(tmp_path / "p.yaml", profile))
    assert [(e.channel, e.limits.max_current_a) for e in again.devices] == [(7, 1e-3), (9, 5e-4)]
    assert again.limits == profile.limits and not again.fitted


def test_the_server_survives_garbage_and_still_answers():
    """Random bytes, unknown headers, bad numbers, oversized lists: errors are queued, nothing hangs."""
    rng = np.random.default_rng(1)
    words = [":SOUR:LIST:CURR", ":ROUT:SCAN", ":TRIG:COUN", "*IDN?", ":READ?", ":FORM:ELEM", ":BOGUS:CMD?"]
    with (
        bench(4) as (server, instrument),
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
    ):
        for _ in range(200):
            kind = rng.integers(3)
            if kind == 0:
                line = bytes(rng.integers(1, 256, rng.integers(1, 80)).astype(np.uint8)).replace(b"\n", b" ")
            elif kind == 1:
                args = ",".join(str(x) for x in rng.choice(["nan", "1e309", "-5", "abc", "(@1:3)", "'x'"], 3))
                line = f"{rng.choice(words)} {args}".encode()
            else:
                line = (":SOUR:LIST:CURR " + ",".join(["0"] * int(rng.integers(101, 3000)))).encode()
            sock.sendall(line + b"\n")
        sock.sendall(b"*CLS;*IDN?\n")
        reply, expected = b"", (instrument.identity + "\n").encode()
        deadline = time.monotonic() + 10
        while not reply.endswith(expected) and time.monotonic() < deadline:
            reply += sock.recv(1 << 16)  # garbage queries may have answered first
        assert reply.endswith(expected)
        assert instrument.readings == 0  # the output was never switched on


# -- safety ------------------------------------------------------------------------------------------
def fuzz_profile() -> DeviceProfile:
    """Per-device limits that differ, so a check against the wrong device would show."""
    pairs = []
    for k in range(6):
        neuron = {"channel": 2 * k + 1, "max_current_a": [1.2e-3, 4e-4, 8e-4][k % 3]}
        twin = {"channel": 2 * k + 2, "max_current_a": [1.0e-3, 1.2e-3, 2.5e-4][k % 3], "compliance_v": 1.1}
        pairs.append({"neuron": neuron, "twin": twin})
    return DeviceProfile.from_dict({"pairs": pairs, **FAST}, "fuzz")


def random_currents(rng: np.random.Generator, rows: int, limit: np.ndarray) -> torch.Tensor:
    """Random biases for a group whose devices carry at most ``limit`` (per column)."""
    kind = rng.choice(4, p=[0.45, 0.15, 0.25, 0.15])
    shape = (rows if kind == 0 else 1 + rows % 3, len(limit))
    if kind == 0:  # ordinary biases over five decades
        x = rng.normal(0.0, 10 ** rng.uniform(-8, -3.6), shape)
    elif kind == 1:  # extremes
        x = rng.choice([0.0, 1e-300, -1e-300, 1.05, -1e3, 1e30, math.nan, math.inf, -math.inf], shape)
    elif kind == 2:  # right at each device's limit, either side
        x = rng.choice([-1, 1], shape) * limit * (1 + rng.choice([-1e-9, 0.0, 0.0, 1e-9, 1e-6], shape))
    else:  # mostly fine, one bad apple
        x = rng.normal(0.0, 1e-4, shape)
        x.flat[rng.integers(x.size)] = rng.choice([math.nan, 5e-3, -2e-3])
    return torch.from_numpy(x).to([torch.float32, torch.float64][rng.integers(2)])


def test_fuzz_no_request_beyond_the_limits_ever_reaches_the_instrument():
    rng = np.random.default_rng(0)
    profile = fuzz_profile()
    outcomes = {"measured": 0, "refused": 0, "compliance": 0}
    started = time.monotonic()
    with bench(profile=profile, seed=5) as (server, instrument):
        with VisaBackend.open(server.resource, profile) as backend:
            backend.allocate("a", 2)
            backend.allocate("b", 4)
            devices = profile.devices
            limits = {  # per column: the smaller of the neuron's and the twin's max_current_a
                g: np.array([min(e.limits.max_current_a for e in devices[2 * k : 2 * k + 2]) for k in pairs])
                for g, pairs in (("a", range(2)), ("b", range(2, 6)))
            }
            for _ in range(400):
                group = "a" if rng.random() < 0.4 else "b"
                current = random_currents(rng, int(rng.integers(1, 60)), limits[group])  # <= 480 points
                op = rng.integers(3)
                try:
                    if op == 2:
                        v, _ = backend.read_pair(group, current, float(10 ** rng.uniform(-8, -3.5)))
                    else:
                        v = backend.read(group, current, twin=bool(op))
                    assert v.shape == current.shape and torch.isfinite(v).all()
                    outcomes["measured"] += 1
                except SafetyLimitError as exc:
                    assert str(exc).startswith(
                        "refused before writing to the instrument"
                    ) and "\n" not in str(exc)
                    outcomes["refused"] += 1
                except InstrumentError as exc:  # a permitted bias the clamp caught: stopped, still safe
                    assert "went into compliance" in str(exc)
                    outcomes["compliance"] += 1
    log = list(instrument.log)
    assert time.monotonic() - started < 60
    assert outcomes["measured"] > 100 and outcomes["refused"] > 100, outcomes
    limit = {e.channel: e.limits.max_current_a for e in profile.devices}
    sent = applied(log)
    assert len(sent) == instrument.readings == readings_in(log) > 10_000
    assert all(abs(i) <= limit[c] for c, i in sent)  # every number on the wire, checked on its channel
    assert max(abs(i) / limit[c] for c, i in sent) > 0.99  # the fuzz did reach the limits
    assert output_events(log)[-1] == "! output off"


def test_a_fitted_profile_also_refuses_biases_predicted_beyond_the_compliance(tmp_path):
    limits = DeviceProfile.from_dict(
        {"pairs": 2, "limits": {"compliance_v": 0.8, "max_voltage_v": 1.0}}, "low"
    )
    with bench(2, seed=2) as (server, instrument):
        profile, _, _ = calibrate(server.resource, limits, tmp_path / "p.yaml", points=31, repeats=1)
        before = len(instrument.log)
        with VisaBackend.open(server.resource, profile) as backend:
            backend.allocate("h", 2)
            backend.read("h", torch.full((1, 2), 2e-4))  # fine
            with pytest.raises(
                SafetyLimitError, match=r"its fit predicts -[\d.]+ V, beyond its compliance_v 0\.8 V"
            ):
                backend.read("h", torch.full((1, 2), -1.0e-3))  # inside max_current_a, ~1.2 V across R_AP
        assert len(applied(instrument.log[before:])) == 2  # the fine read only


def test_the_afd_calibration_range_beyond_the_limits_is_refused_with_the_range_that_fits(tmp_path):
    """An explicit +/-32 I_s = +/-3.2 mA calibration sweep: refused, and the message says what fits
    (left unset, the range is derived from the profile: test_calibrate_then_train_iris_...)."""
    profile_path = write_profile(tmp_path / "limits.yaml", DeviceProfile.default(16))
    exp = get("iris-afd")
    overrides = {"device.profile": profile_path, "afd.calibration_range": 32}
    cfg = config.build(exp.config_cls, exp.default_config(), None, overrides)
    with bench(16) as (server, instrument):
        with pytest.raises(SafetyLimitError) as err:
            run_experiment(exp, cfg, tmp_path / "run", quiet=True, backend="visa", resource=server.resource)
    assert not applied(instrument.log)
    assert output_events(instrument.log)[-1] == "! output off"
    match = re.search(r"--set afd\.calibration_range=([\d.]+) or less fits this profile", str(err.value))
    assert match and 11.0 < float(match.group(1)) <= 12.0  # 1.2 mA / 100 uA


# -- wrong answers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fault, message",
    [
        ("garble", r"garbled answer from .* to :READ\? .*is not a number"),
        ("short", r"garbled answer from .* to :READ\? .*: 30 values instead of 32"),
        ("nan", r"garbled answer from .* not-a-number readings"),
        ("silent", r"no answer from .* to :READ\? \(16 points\) within 1 s \(2 tries\)"),
        ("idn", r"answered \*IDN\? with 'KEITHLEY INSTRUMENTS INC\.,MODEL 2000.*not a model 2400"),
    ],
)
def test_a_wrong_answer_stops_with_one_clear_line_and_the_output_off(fault, message):
    with bench(4, faults={fault: 2}) as (server, instrument):
        started = time.monotonic()
        with pytest.raises(InstrumentError, match=message) as err:
            with VisaBackend.open(
                server.resource, DeviceProfile.from_dict({"pairs": 4, **FAST}, "f")
            ) as backend:
                backend.allocate("h", 4)
                for _ in range(5):
                    backend.read_pair("h", torch.full((2, 4), 1e-4), 2e-6)
        assert time.monotonic() - started < 10
        assert "\n" not in str(err.value)
    events = output_events(instrument.log)
    assert events == [] if fault == "idn" else events[-1] == "! output off"
    if fault == "idn":  # a wrong instrument gets nothing beyond the identity query
        assert not any(
            line.startswith("> ") and "*IDN?" not in line and "FORMAT" not in line for line in instrument.log
        )


def test_an_instrument_that_cannot_be_reached_is_a_clear_error():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(InstrumentError, match=f"cannot open instrument TCPIP::127.0.0.1::{port}::SOCKET"):
        VisaBackend.open(f"TCPIP::127.0.0.1::{port}::SOCKET", DeviceProfile.default(1))


SETUP = r"""
      - {q: ":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS"}
      - {q: "*RST"}
      - {q: "*CLS"}
      - {q: ":SOURCE:FUNCTION CURR"}
      - {q: ":SOURCE:CURRENT:RANGE 0.0012"}
      - {q: ":SENSE:VOLTAGE:PROTECTION 1.4"}
      - {q: ":SENSE:VOLTAGE:NPLCYCLES 0.01"}
      - {q: "OUTPUT 0"}
      - {q: ":SENS:FUNC 'VOLT'"}
      - {q: ":FORM:ELEM VOLT,STAT"}
      - {q: ":SOUR:CURR:MODE LIST"}
      - {q: ":OUTP OFF;:ROUT:OPEN:ALL"}"""  # the exact set-up messages of SourceMeter, default profile

PYVISA_SIM = (
    r"""
spec: "1.1"
devices:
  smu:
    eom:
      TCPIP SOCKET: {q: "\n", r: "\n"}
    error: ERROR
    dialogues:
      - {q: "*IDN?", r: "KEITHLEY INSTRUMENTS INC.,MODEL 2400,1234567,C30 Mar 17 2006 09:29:29/A02 /K/J"}
      - {q: "SYST:ERR?", r: "0,\"No error\""}"""
    + SETUP
    + r"""
  dmm:
    eom:
      TCPIP SOCKET: {q: "\n", r: "\n"}
    error: ERROR
    dialogues:
      - {q: ":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS"}
      - {q: "*IDN?", r: "KEITHLEY INSTRUMENTS INC.,MODEL 2000,4030,A20"}
  stuck:
    eom:
      TCPIP SOCKET: {q: "\n", r: "\n"}
    error: ERROR
    dialogues:
      - {q: "*IDN?", r: "KEITHLEY INSTRUMENTS INC.,MODEL 2400,1,C30"}
      - {q: "SYST:ERR?", r: "-113,\"Undefined header\""}"""
    + SETUP
    + r"""
  crlf:
    eom:
      TCPIP SOCKET: {q: "\r\n", r: "\r\n"}
    error: ERROR
    dialogues:
      - {q: "*IDN?", r: "KEITHLEY INSTRUMENTS INC.,MODEL 2400,1,C30"}
resources:
  TCPIP::sim-smu::5025::SOCKET: {device: smu}
  TCPIP::sim-dmm::5025::SOCKET: {device: dmm}
  TCPIP::sim-stuck::5025::SOCKET: {device: stuck}
  TCPIP::sim-crlf::5025::SOCKET: {device: crlf}
"""
)


@pytest.mark.parametrize(
    "resource, message",
    [
        (
            "sim-smu",
            r"garbled answer .* 1 values instead of 4: 'ERROR'",
        ),  # an error string where data belongs
        ("sim-dmm", r"answered \*IDN\? with 'KEITHLEY INSTRUMENTS INC\.,MODEL 2000,4030,A20'"),
        ("sim-stuck", r"rejected its set-up: error -113 \"Undefined header\""),  # a queue that never empties
        ("sim-crlf", r"no answer from .* to \*IDN\? within 0.5 s; check .* terminations"),
    ],
)
def test_pyvisa_sim_plumbing_errors_are_clear(tmp_path, resource, message):
    (tmp_path / "sim.yaml").write_text(PYVISA_SIM)
    profile = DeviceProfile.from_dict({"pairs": 1, "instrument": {"timeout_s": 0.5, "retries": 0}}, "sim")
    with pytest.raises(InstrumentError, match=message) as err:
        with VisaBackend.open(
            f"TCPIP::{resource}::5025::SOCKET", profile, visa_library=f"{tmp_path / 'sim.yaml'}@sim"
        ) as backend:
            assert backend.describe()["identity"].startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400,1234567")
            backend.allocate("h", 1)
            backend.read("h", torch.zeros(2, 1))
    assert "\n" not in str(err.value)


def test_cli_exits_2_with_one_line_on_a_garbled_answer(tmp_path):
    profile = write_profile(tmp_path / "limits.yaml", DeviceProfile.from_dict({"pairs": 16, **FAST}, "cli"))
    args = ["run", "iris-afd", "--backend", "visa", "--set", f"device.profile={profile}", "--quiet"]
    args += [
        "--set",
        "afd.calibration_range=8",
        "--set",
        "afd.calibration_reads=1",
        "--out",
        str(tmp_path / "o"),
    ]
    with bench(16, faults={"garble": 5}) as (server, instrument):
        done = spinlearn(*args, "--resource", server.resource, timeout=CLI_TIMEOUT_S)
    events = output_events(instrument.log)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("spinlearn: error: garbled answer from TCPIP::127.0.0.1::")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert events[-1] == "! output off"


SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143), "SIGHUP": (signal.SIGHUP, 129)}


@pytest.mark.parametrize(  # SIGTERM in the default set; the other two take the same path (slow set)
    "name", [pytest.param(n, marks=() if n == "SIGTERM" else pytest.mark.slow) for n in SIGNALS]
)
def test_a_signal_during_training_switches_the_output_off_and_resume_completes_the_run(tmp_path, name):
    """Ctrl-C, kill (SIGTERM: also timeout, SLURM's scancel, systemd) or a closed terminal (SIGHUP):
    the output goes off as the bench's last event, exit 128 + the signal, and --resume finishes."""
    signum, code = SIGNALS[name]
    profile = write_profile(tmp_path / "limits.yaml", DeviceProfile.default(16))
    cmd = [sys.executable, "-m", "spinlearn", "run", "iris-afd", "--backend", "visa", "--quiet"]
    cmd += ["--set", f"device.profile={profile}", "--set", "train.epochs=6", "--out", str(tmp_path / "o")]
    with serve_cli(tmp_path, "--profile", profile) as (resource, log_file):
        # SIGINT at its default even when the tests run as a background job (which starts children
        # with SIGINT ignored, and Python then installs no handler for it).
        proc = subprocess.Popen(
            [*cmd, "--resource", resource],
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 90
            metrics = tmp_path / "o" / "metrics.jsonl"
            while not metrics.exists() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)  # the first epoch is done: the second is under way
            assert metrics.exists() and proc.poll() is None, "the run never got going"
            proc.send_signal(signum)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=15)
        assert proc.returncode == code, stderr
        assert stderr.strip().splitlines()[-1] == f"spinlearn: interrupted ({name})"
        time.sleep(0.2)  # the server logs the last command it got before the connection closed
        log = log_file.read_text().splitlines()
        assert output_events(log)[-1] == "! output off"
        last_read = max(k for k, line in enumerate(log) if ":READ?" in line)
        assert "! output off" in log[last_read:]
        done = spinlearn(*cmd[3:], "--resource", resource, "--resume", timeout=CLI_TIMEOUT_S)
        assert done.returncode == 0, done.stderr
    records = (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert output_events(log_file.read_text().splitlines())[-1] == "! output off"


def test_sigterm_during_calibrate_switches_the_output_off(tmp_path):
    limits = write_profile(tmp_path / "limits.yaml", DeviceProfile.default(16))
    with serve_cli(tmp_path, "--profile", limits) as (resource, log_file):
        cal = ["calibrate", "--resource", resource, "--profile", limits, "--out", str(tmp_path / "p.yaml")]
        proc = subprocess.Popen(
            [sys.executable, "-m", "spinlearn", *cal, "--repeats", "200", "--quiet"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 90
            while readings_in(log_file.read_text().splitlines()) < 5000 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, "calibrate ended before the signal"
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=15)
        time.sleep(0.2)  # the server logs the last command it got before the connection closed
        log = log_file.read_text().splitlines()
    assert proc.returncode == 143, stderr
    assert stderr.strip() == "spinlearn: interrupted (SIGTERM)"
    assert output_events(log)[-1] == "! output off"
    assert not (tmp_path / "p.yaml").exists()


# -- backend selection -----------------------------------------------------------------------------------
def test_backend_selection_is_checked_before_anything_runs(tmp_path):
    exp = get("iris-afd")
    cfg = exp.default_config()
    for kwargs, message in [
        ({"backend": "visa"}, "--backend visa needs --resource"),
        ({"backend": "simulated", "resource": "GPIB0::1::INSTR"}, "use it with --backend visa"),
        ({"backend": "lab"}, "--backend must be one of simulated, visa"),
    ]:
        with pytest.raises(UserInputError, match=message):
            run_experiment(exp, cfg, tmp_path / "o", quiet=True, **kwargs)
    ctx = RunContext(0, torch.device("cpu"), tmp_path, backend="visa", resource="TCPIP::127.0.0.1::1::SOCKET")
    with pytest.raises(ConfigError, match=r"needs a device profile .* --set device.profile=FILE"):
        make_backend(cfg.device, ctx)


# -- calibration and the sim-to-real loop ------------------------------------------------------------------
def test_calibration_recovers_the_devices_and_drives_the_simulated_backend(tmp_path):
    with bench(4, seed=11) as (server, instrument):
        profile, fits, record = calibrate(
            server.resource, DeviceProfile.default(4), tmp_path / "p.yaml", plot=tmp_path / "p.png", points=41
        )
        truth = instrument.devices
        with VisaBackend.open(server.resource, profile) as real:
            real.allocate("h", 4)
            grid = torch.linspace(-6e-4, 6e-4, 25, dtype=torch.float64)[:, None].expand(25, 4)
            measured = real.read("h", grid).double()
    assert record["readings"] == 8 * 41 * 4 and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    for name, tol in (("r_p_ohm", 1e-3), ("tmr0", 5e-3), ("is_a", 1e-2), ("v_half_v", 1e-2)):
        fitted = torch.tensor([getattr(f.params, name) for f in fits], dtype=torch.float64)
        assert torch.allclose(fitted, getattr(truth, name), rtol=tol), name
    fitted_i0 = torch.tensor([f.params.i0_a for f in fits], dtype=torch.float64)
    assert (fitted_i0 - truth.i0_a).abs().max() < 1e-6  # 1 % of I_s
    assert all(f.quality["v_half_identified"] for f in fits)
    assert all(abs(f.quality["read_noise_v"] / 1e-4 - 1) < 0.2 for f in fits)

    # The fitted profile as a simulated chip: same voltages as the instrument, to within the read noise.
    device_cfg = DeviceConfig(profile=str(tmp_path / "p.yaml"))
    ctx = RunContext(0, torch.device("cpu"), tmp_path)
    sim = make_backend(device_cfg, ctx, torch.float64)
    assert isinstance(sim, SimulatedBackend) and ctx.backends == [sim]
    sim.allocate("h", 4)
    assert torch.allclose(sim.population("h").r_p_ohm, truth.r_p_ohm[0::2], rtol=1e-3)
    assert sim.params.read_noise_v == pytest.approx(1e-4, rel=0.2)
    simulated = sim.read("h", grid)
    assert (simulated - measured).abs().max() < 8 * math.sqrt(2) * 1e-4
    assert sim.describe()["profile"] == str(tmp_path / "p.yaml")


def test_calibrate_then_train_iris_through_instrument_serve(tmp_path):
    """The whole path through the CLI: serve, calibrate, train (a short schedule: see test_visa_slow)."""
    limits = write_profile(tmp_path / "limits.yaml", DeviceProfile.default(16))
    with serve_cli(tmp_path, "--seed", "3", "--profile", limits) as (resource, log_file):
        profile = tmp_path / "profile.yaml"
        cal = ["calibrate", "--resource", resource, "--profile", limits, "--out", str(profile)]
        done = spinlearn(*cal, "--points", "41", "--repeats", "2", timeout=CLI_TIMEOUT_S)
        assert done.returncode == 0, done.stderr
        assert "32 devices" in done.stdout and (tmp_path / "profile.png").exists()
        fitted = yaml.safe_load(profile.read_text())
        assert fitted["calibration"]["identity"].startswith("SPINLEARN,VIRTUAL MODEL 2400")

        before = len(log_file.read_text().splitlines())
        run = ["run", "iris-afd", "--backend", "visa", "--resource", resource, "--quiet", "--seed", "1"]
        run += ["--set", f"device.profile={profile}"]  # afd.calibration_range derived from its limits
        run += [
            "--set",
            "afd.calibration_reads=4",
            "--set",
            "train.epochs=15",
            "--out",
            str(tmp_path / "run"),
        ]
        done = spinlearn(*run, timeout=CLI_TIMEOUT_S)
        assert done.returncode == 0, done.stderr
    log = log_file.read_text().splitlines()
    derived = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["afd"]["calibration_range"]
    assert 0 < derived <= 32
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    metrics, backend = summary["metrics"], summary["backend"]
    assert metrics["test_accuracy_mean"] >= 0.9
    assert summary["paper"] == {"test_accuracy_mean": 0.933}  # devices in the loop: the paper's device figure
    assert metrics["instrument_measurements"] == readings_in(log[before:]) > 50_000
    assert 0 < metrics["instrument_time_s"] < summary["runtime_s"]
    assert backend["kind"] == "visa" and backend["resource"] == resource
    assert backend["identity"].startswith("SPINLEARN,VIRTUAL MODEL 2400") and backend["fitted_profile"]
    assert (
        backend["settings"]["compliance_v"] == 1.4 and backend["groups"]["hidden0"]["twin_channels"][0] == 2
    )
    limit = fitted["limits"]["max_current_a"]
    assert all(abs(i) <= limit for _, i in applied(log))
    assert not any("BREAKDOWN" in line for line in log)
    assert output_events(log)[-1] == "! output off"
