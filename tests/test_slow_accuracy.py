"""Accuracy-level runs of the issue's 'Must show' list (minutes): ``make test-slow``."""

import pytest
from cli_helpers import run_summary

pytestmark = pytest.mark.slow
# The MNIST runs outlast the helper's 600 s default: the DANP ones take about 30 min on 2 cores (one
# was stopped at epoch 11 of its run by the default), mnist-kd 16 min beside another job.
LONG_RUN_S = 3600


@pytest.mark.parametrize(("name", "floor"), [("iris-afd", 0.95), ("iris-afd-2h", 0.933)])
def test_iris_reaches_the_simulation_figure(tmp_path, name, floor):
    """iris-afd: the paper's simulations reach "95 %+" [S]; iris-afd-2h has no published figure,
    so it is held to the one-hidden-layer device-in-the-loop figure (0.933 [C])."""
    summary = run_summary(tmp_path, name, "--seeds", "10")
    assert summary["metrics"]["test_accuracy_mean"] >= floor


@pytest.mark.parametrize("name", ["iris-afd", "iris-afd-2h"])
def test_iris_tolerates_fifteen_percent_variability(tmp_path, name):
    summary = run_summary(
        tmp_path, name, "--seeds", "10", "--seed", "100", "--set", "device.variability=0.15"
    )
    assert summary["metrics"]["test_accuracy_mean"] >= 0.90


def test_iris_with_independent_twins_still_learns(tmp_path):
    summary = run_summary(tmp_path, "iris-afd", "--seeds", "10", "--set", "device.twin_mismatch=null")
    assert summary["metrics"]["test_accuracy_mean"] >= 0.90


def test_afd_matches_the_tanh_baseline_on_iris(tmp_path):
    afd = run_summary(tmp_path / "afd", "iris-afd", "--seeds", "10")["metrics"]["test_accuracy_mean"]
    tanh = run_summary(tmp_path / "tanh", "iris-tanh", "--seeds", "10")["metrics"]["test_accuracy_mean"]
    assert afd >= tanh - 0.02


def test_mnist_afd_reaches_the_paper_and_matches_tanh(tmp_path):
    metrics = run_summary(tmp_path, "mnist-afd", timeout=LONG_RUN_S)["metrics"]
    assert metrics["test_accuracy_mean"] >= 0.979
    assert abs(metrics["test_accuracy_mean"] - metrics["tanh_test_accuracy_mean"]) <= 0.005


def test_mnist_kd_student_reaches_the_paper_and_beats_no_kd(tmp_path):
    metrics = run_summary(tmp_path, "mnist-kd", timeout=LONG_RUN_S)["metrics"]
    assert metrics["test_accuracy_mean"] >= 0.972
    assert metrics["test_accuracy_mean"] > metrics["student_no_kd_accuracy_mean"]


def test_hopfield_35_meets_the_paper_on_five_seeds(tmp_path):
    metrics = run_summary(tmp_path, "hopfield-35", "--seeds", "5")["metrics"]
    assert metrics["recall_accuracy_mean"] >= 0.95 and metrics["epochs_to_target_mean"] <= 10


def test_hopfield_capacity_hebbian_in_the_theory_band_and_texture_beside_it(tmp_path):
    metrics = run_summary(tmp_path, "hopfield-capacity")["metrics"]
    assert 0.08 <= metrics["capacity_alpha_hebbian_n100_mean"] <= 0.2
    for n in (100, 400, 1000):
        assert (
            metrics[f"capacity_alpha_texture_delta_n{n}_mean"] >= metrics[f"capacity_alpha_hebbian_n{n}_mean"]
        )


def test_mnist_danp_lands_within_one_point_of_the_authors_code(tmp_path):
    metrics = run_summary(tmp_path, "mnist-danp", timeout=LONG_RUN_S)["metrics"]
    assert abs(metrics["test_accuracy_mean"] - 0.912) <= 0.01  # their code, same settings, seed 42
    assert metrics["bp_test_accuracy_mean"] > metrics["test_accuracy_mean"]


def test_mnist_danp_tuned_reaches_96_percent_within_50_epochs(tmp_path):
    metrics = run_summary(tmp_path, "mnist-danp-tuned", timeout=LONG_RUN_S)["metrics"]
    assert metrics["test_accuracy_mean"] >= 0.96


def test_smtj_small_network_reaches_90_percent(tmp_path):
    assert (
        run_summary(tmp_path, "smtj-small-network", "--seeds", "5")["metrics"]["test_accuracy_mean"] >= 0.90
    )


def test_iris_chip_reaches_the_device_in_the_loop_figure_over_ten_seeds(tmp_path):
    metrics = run_summary(tmp_path, "iris-chip", "--seeds", "10")["metrics"]
    assert metrics["test_accuracy_mean"] >= 0.93


def test_mnist_chip_within_a_point_of_float_and_its_perturbation_twin_above_090(tmp_path):
    metrics = run_summary(tmp_path, "mnist-chip", timeout=LONG_RUN_S)["metrics"]
    assert metrics["test_accuracy_mean"] >= 0.97
    assert metrics["float_test_accuracy_mean"] - metrics["test_accuracy_mean"] <= 0.01
    assert metrics["danp_chip_test_accuracy_mean"] >= 0.90
