"""Accuracy-level runs of issue 5's 'Must show' list (minutes each): ``make test-slow``."""

import pytest
from cli_helpers import run_summary

pytestmark = pytest.mark.slow


def _metrics(tmp_path_factory, name: str) -> dict:
    return run_summary(tmp_path_factory.mktemp(name), name)["metrics"]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return _metrics(tmp_path_factory, "mnist-dw-sgld")


def test_mlp_dw_sgld_learns_mnist_like_float_sgld(mlp):
    assert mlp["test_accuracy_mean"] >= 0.97
    assert abs(mlp["test_accuracy_mean"] - mlp["accuracy_float_sgld_mean"]) <= 0.005


def test_mlp_posterior_beats_one_sample_on_nll_and_on_every_ood_kind(mlp):
    assert mlp["nll_posterior_minus_single_mean"] <= 0
    assert mlp["ood_auroc_posterior_minus_single_mean"] >= 0


@pytest.mark.xfail(
    reason="measured 2026-12-06, seeds 0-2: posterior minus SGD least AUROC margin -0.050, -0.015, "
    "-0.006 (noise 0.972 vs 0.993, shapes 0.955 vs 0.963, rotated 0.925 vs 0.930, class 0.948 vs 0.950, "
    "means). Averaging gains at most 0.0034 AUROC and 0.0022 NLL, while SGD's point estimate is the better "
    "one (NLL 0.071 vs 0.077). A warm chain (T = 1, seed 0) gains more by averaging (NLL -0.014, AUROC "
    "+0.009 to +0.047) but loses more per sample (accuracy 0.964, margin -0.176). Issue 28",
    strict=False,
)
def test_mlp_posterior_detects_inputs_no_class_fits_better_than_sgd(mlp):
    assert mlp["ood_auroc_posterior_minus_sgd_mean"] >= 0


def test_six_bit_updates_reach_float_sgld_and_two_bits_do_not(tmp_path):
    m = run_summary(tmp_path, "dw-bits-sweep")["metrics"]
    assert m["accuracy_float_sgld_mean"] - m["accuracy_bits_6_mean"] <= 0.005
    assert m["accuracy_bits_8_mean"] - m["accuracy_bits_2_mean"] >= 0.03


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    return _metrics(tmp_path_factory, "mnist-dw-resnet18")


def test_resnet18_dw_sgld_matches_float_sgld(resnet):
    assert resnet["test_accuracy_mean"] >= 0.98
    assert abs(resnet["test_accuracy_mean"] - resnet["accuracy_float_sgld_mean"]) <= 0.005
    assert resnet["nll_posterior_mean"] <= resnet["nll_single_mean"]
