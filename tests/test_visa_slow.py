"""Acceptance: iris-afd trained through the virtual instrument over VISA reaches 90 % (minutes)."""

import json

import pytest
from cli_helpers import spinlearn
from test_visa import applied, output_events, readings_in, serve_cli, write_profile

from spinlearn.hardware import DeviceProfile

SEEDS = "3"
TIMEOUT_S = 900


@pytest.mark.slow
def test_iris_afd_through_instrument_serve_reaches_ninety_percent_and_so_does_its_fitted_twin(tmp_path):
    limits = write_profile(tmp_path / "limits.yaml", DeviceProfile.default(16))
    profile = tmp_path / "profile.yaml"
    with serve_cli(tmp_path, "--seed", "7", "--profile", limits) as (resource, log_file):
        cal = ["calibrate", "--resource", resource, "--profile", limits, "--out", str(profile)]
        done = spinlearn(*cal, timeout=TIMEOUT_S)
        assert done.returncode == 0, done.stderr
        before = len(log_file.read_text().splitlines())
        run = ["run", "iris-afd", "--backend", "visa", "--resource", resource, "--seeds", SEEDS, "--quiet"]
        run += ["--set", f"device.profile={profile}", "--set", "afd.calibration_range=8"]
        done = spinlearn(*run, "--out", str(tmp_path / "visa"), timeout=TIMEOUT_S)
        assert done.returncode == 0, done.stderr
    log = log_file.read_text().splitlines()
    summary = json.loads((tmp_path / "visa" / "summary.json").read_text())
    metrics = summary["metrics"]
    assert metrics["test_accuracy_mean"] >= 0.90, summary["per_seed"]["test_accuracy"]
    assert sum(summary["per_seed"]["instrument_measurements"]) == readings_in(log[before:])
    assert summary["backend"]["identity"].startswith("SPINLEARN,VIRTUAL MODEL 2400")
    limit = DeviceProfile.load(profile).limits.max_current_a
    assert all(abs(i) <= limit for _, i in applied(log))
    assert not any("BREAKDOWN" in line for line in log) and output_events(log)[-1] == "! output off"

    # The sim-to-real loop: the fitted chip, simulated, trains to the same standard.
    sim = ["run", "iris-afd", "--seeds", SEEDS, "--quiet", "--set", f"device.profile={profile}"]
    done = spinlearn(*sim, "--out", str(tmp_path / "sim"), timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    simulated = json.loads((tmp_path / "sim" / "summary.json").read_text())
    assert simulated["backend"] == {
        "kind": "simulated",
        "groups": {"hidden0": 16},
        "profile": str(profile),
        "devices": "fitted (profile)",
    }
    assert simulated["metrics"]["test_accuracy_mean"] >= 0.90
