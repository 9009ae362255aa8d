"""Accuracy-level runs of issue 5's 'Must show' list (minutes each): ``make test-slow``."""

import pytest
from cli_helpers import run_summary

pytestmark = pytest.mark.slow


def test_mlp_dw_sgld_learns_mnist_like_float_sgld(tmp_path):
    m = run_summary(tmp_path, "mnist-dw-sgld")["metrics"]
    assert m["test_accuracy_mean"] >= 0.97
    assert abs(m["test_accuracy_mean"] - m["accuracy_float_sgld_mean"]) <= 0.005


def test_six_bit_updates_reach_float_sgld_and_two_bits_do_not(tmp_path):
    m = run_summary(tmp_path, "dw-bits-sweep")["metrics"]
    assert m["accuracy_float_sgld_mean"] - m["accuracy_bits_6_mean"] <= 0.005
    assert m["accuracy_bits_8_mean"] - m["accuracy_bits_2_mean"] >= 0.03


def test_resnet18_dw_sgld_matches_float_sgld_and_averaging_calibrates(tmp_path):
    m = run_summary(tmp_path, "mnist-dw-resnet18")["metrics"]
    assert m["test_accuracy_mean"] >= 0.98
    assert abs(m["test_accuracy_mean"] - m["accuracy_float_sgld_mean"]) <= 0.005
    assert m["ece_posterior_mean"] <= m["ece_single_mean"]
