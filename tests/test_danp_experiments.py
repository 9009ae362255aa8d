"""The DANP experiments end to end, and the device-noise source against the sMTJ physics."""

import pytest
import torch
from cli_helpers import run_summary, spinlearn

from spinlearn.devices.smtj import SMTJ, SMTJParams, mean_state
from spinlearn.learning.danp_noise import NOISE_SOURCES, NoiseConfig


def test_device_noise_follows_the_smtj_physics():
    source = NOISE_SOURCES["smtj_device"](
        50, torch.Generator().manual_seed(0), NoiseConfig(kind="smtj_device")
    )
    samples = torch.cat([source(400) for _ in range(10)]).double()  # 200k samples of 4 devices
    p = SMTJParams()
    pop = source.population
    # Mean read voltage: I (R_P P(P) + R_AP P(AP)) with P(P) = (1 + <s>) / 2 per device, averaged.
    prob_p = (1 + mean_state(p.i_read_a, pop)) / 2
    r_ap = pop.r_p_ohm * (1 + p.tmr0)
    expected = float((p.i_read_a * (pop.r_p_ohm * prob_p + r_ap * (1 - prob_p))).mean())
    assert float(samples.mean()) == pytest.approx(expected, rel=0.03)
    assert samples.shape == (4000, 50) and isinstance(source.model, SMTJ)


def test_smtj_small_network_learns_iris_from_four_devices(tmp_path):
    summary = run_summary(tmp_path, "smtj-small-network", "--set", "train.epochs=30")
    metrics = summary["metrics"]
    assert metrics["test_accuracy_mean"] >= 0.85
    assert {"np_test_accuracy_mean", "bp_test_accuracy_mean", "test_accuracy_clean_mean"} <= set(metrics)
    assert {"learning_curves.png", "noise_trace.png"} <= set(summary["plots"])


def test_digits_danp_compares_every_variant(tmp_path):
    metrics = run_summary(tmp_path, "digits-danp", "--set", "train.epochs=3")["metrics"]
    for prefix in ("", "np_", "gaussian_", "bp_"):
        assert 0.1 < metrics[f"{prefix}test_accuracy_mean"] <= 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["device.kind=trace"], "trace"),
        (["data.dataset=iris", "data.train_subset=10"], "train_subset"),
        (["device.kind=trace", "device.trace_path=/nonexistent.csv", "data.dataset=digits"], "nonexistent"),
        (["rule.variant=backprop"], "variant"),
    ],
)
def test_bad_danp_inputs_give_one_line_and_exit_2(tmp_path, overrides, message):
    args = [a for o in overrides for a in ("--set", o)]
    done = spinlearn("run", "mnist-danp", *args, "--out", str(tmp_path), "--quiet")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
