"""The chip: DW synapses feeding MTJ neurons, trained with no digital gradient pass."""

import pytest
import torch
from cli_helpers import run_summary

import spinlearn as sl
from spinlearn import cli
from spinlearn.nn import DWLinear, MTJActivation


def test_iris_chip_trains_on_devices_only_and_books_reads_and_pulses(tmp_path):
    summary = run_summary(tmp_path, "iris-chip", "--set", "train.epochs=6", "--set", "perturbation.epochs=4")
    m = summary["metrics"]
    # the node-perturbation chip: 60 updates, no twin read, no backward pass
    assert m["danp_chip_test_accuracy"] > 0.5 and m["danp_chip_pulses"] > 0 and m["danp_chip_train_j"] > 0
    assert m["test_accuracy"] > 0.6 and m["float_test_accuracy"] > 0.6  # 3 classes: 0.33 is chance
    assert m["chip_minus_float"] == m["test_accuracy"] - m["float_test_accuracy"]
    energy = summary["energy"]
    assert energy["train_mtj_read_count"] > 0 and energy["train_dw_pulse_count"] > 0
    assert energy["calibration_j"] > 0 and energy["digital_baseline_train_j"] > 0
    model = sl.load_run(tmp_path)
    compute = [m for m in model.modules() if isinstance(m, torch.nn.Linear | torch.nn.Tanh | torch.nn.ReLU)]
    assert not compute  # every weight on DW pairs, every nonlinearity an MTJ
    assert sum(isinstance(m, DWLinear) for m in model.modules()) == 2
    assert sum(isinstance(m, MTJActivation) for m in model.modules()) == 1


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("perturbation.lr=0", "perturbation.lr = 0.0: must be > 0 and <= 1"),
        ("noise.kind=magic", "noise.kind = 'magic': must be one of gaussian, bernoulli, centred_bernoulli, "),
    ],
)
def test_bad_perturbation_chip_input_is_one_line_and_exit_2(tmp_path, capsys, setting, message):
    assert cli.main(["run", "iris-chip", "--quiet", "--out", str(tmp_path), "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spinlearn: error: {message}") and err.count("\n") == 1
