"""Energy ledger: counts against analytic counts, linear scaling with epochs, the CLI command."""

import pytest
import torch
from cli_helpers import run_summary, spinlearn

from spinlearn.energy import EnergyConfig, Ledger, digital_baseline_train_j, summarise
from spinlearn.nn import mlp


def test_device_read_energy_is_the_joule_energy_of_the_pulse():
    ledger = Ledger(EnergyConfig(t_read_s=1e-8, adc_j=1e-12, dac_j=2e-12))
    with ledger.in_phase("train"):
        ledger.device_reads(torch.tensor([1e-4, -2e-4]), torch.tensor([0.1, -0.3]))
    joules = ledger.joules["train"]
    assert joules["mtj_read"] == pytest.approx((1e-5 + 6e-5) * 1e-8)
    assert joules["adc"] == pytest.approx(2e-12) and joules["dac"] == pytest.approx(4e-12)
    assert ledger.counts["train"]["mtj_read"] == 2
    assert ledger.read_time_s["train"] == pytest.approx(2e-8)


def test_digital_baseline_counts_three_macs_per_weight_and_two_activations_per_neuron():
    model = mlp([4, 16, 3], lambda w, k: torch.nn.Tanh(), torch.Generator().manual_seed(0))
    cfg = EnergyConfig(mac_j=1e-12, sram_word_j=0.0, activation_j=1e-11)
    expected = 3 * (4 * 16 + 16 * 3) * 5 * 1e-12 + 2 * 16 * 5 * 1e-11
    assert digital_baseline_train_j(4 * 16 + 16 * 3, 16, 5, cfg) == pytest.approx(expected)
    assert summarise(Ledger(cfg), model, 5, 1)["digital_baseline_train_j"] == pytest.approx(expected)


def test_afd_run_counts_match_analytic_counts(tmp_path):
    epochs, hidden = 3, 16
    energy = run_summary(tmp_path, "iris-afd", "--set", f"train.epochs={epochs}")["energy"]
    train_samples = 120 * epochs
    assert energy["train_mtj_read_count"] == 2 * hidden * train_samples  # neuron + twin per sample
    assert energy["train_adc_count"] == energy["train_dac_count"] == 2 * hidden * train_samples
    assert energy["train_mac_count"] == 3 * (4 * hidden + hidden * 3) * train_samples
    assert energy["train_sram_count"] == 2 * energy["train_mac_count"]
    assert energy["calibration_j"] > 0 and energy["inference_j"] > 0
    parts = sum(
        v for k, v in energy.items() if k.startswith("train_") and k.endswith("_j") and k != "train_j"
    )
    assert energy["train_j"] == pytest.approx(parts)


def test_training_energy_scales_linearly_with_epochs(tmp_path):
    long = run_summary(tmp_path / "a", "iris-afd", "--set", "train.epochs=20")["energy"]["train_j"]
    short = run_summary(tmp_path / "b", "iris-afd", "--set", "train.epochs=10")["energy"]["train_j"]
    assert 1.9 <= long / short <= 2.1


def test_energy_command_prints_the_comparison(tmp_path):
    run_summary(tmp_path, "iris-afd", "--set", "train.epochs=2")
    out = spinlearn("energy", str(tmp_path))
    assert out.returncode == 0
    assert "digital baseline training" in out.stdout and "inference, one sample" in out.stdout
    assert (tmp_path / "energy.png").read_bytes()[:4] == b"\x89PNG"


def test_energy_command_on_a_missing_run_is_exit_code_2(tmp_path):
    out = spinlearn("energy", str(tmp_path / "none"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1


def test_energy_parameters_are_overridable(tmp_path):
    base = run_summary(tmp_path / "a", "iris-afd", "--set", "train.epochs=2")["energy"]
    cheap = run_summary(tmp_path / "b", "iris-afd", "--set", "train.epochs=2", "--set", "energy.mac_j=0")[
        "energy"
    ]
    assert cheap["train_mac_j"] == 0 and base["train_mac_j"] > 0
    assert cheap["train_j"] == pytest.approx(base["train_j"] - base["train_mac_j"])
