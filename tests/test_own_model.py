"""A user's own model (examples/digits_chip.py): reproducible from torch.manual_seed, metered right,
its chip saved and restored."""

import io
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from spinlearn import DWLinear, MTJActivation, transfer_weights
from spinlearn.energy import EnergyConfig

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_chip.py"
train = runpy.run_path(str(EXAMPLE))["train"]
N_TRAIN = 480  # of digits' 1437 training samples: enough to learn, cheap to repeat

IN_PROCESS = f"""
import runpy
train = runpy.run_path({str(EXAMPLE)!r})["train"]
_, accuracy, pulses, _ = train(seed=0, train_size=480)
print(accuracy, pulses)
"""


@pytest.fixture(scope="module")
def runs():
    return [train(seed=0, train_size=N_TRAIN) for _ in range(3)]


def test_seeded_script_repeats_in_one_process_and_across_processes(runs):
    figures = {(accuracy, pulses) for _, accuracy, pulses, _ in runs}
    assert len(figures) == 1
    accuracy, pulses = figures.pop()
    assert pulses > 0 and accuracy > 0.2  # it learned (one short epoch; 0.1 is chance)
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", IN_PROCESS], capture_output=True, text=True, check=True)
        assert out.stdout.split() == [repr(accuracy), str(pulses)]
    other_pulses = train(seed=1, train_size=N_TRAIN)[2]
    assert other_pulses != pulses  # the seed matters


def test_energy_summary_matches_a_count_made_here(runs):
    model, _, pulses, energy = runs[0]
    cfg = EnergyConfig()
    n_train, n_test, hidden = N_TRAIN, 360, 32  # digits' test split: 20 % of 1797
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            model(torch.zeros(7, 64))
    macs = counter.get_total_flops() // (2 * 7)
    assert macs == 64 * 32 + 32 * 10 == 2368
    baseline = (
        3 * macs * n_train * (cfg.mac_j + 2 * cfg.sram_word_j) + 2 * hidden * n_train * cfg.activation_j
    )
    assert energy["digital_baseline_train_j"] == pytest.approx(baseline, rel=1e-12)
    assert energy["train_mtj_read_count"] == 2 * hidden * n_train  # neuron and twin per sample
    assert energy["train_dw_pulse_count"] == pulses
    assert "train_mac_count" not in energy  # no digital layer: nothing booked as digital MACs
    parts = sum(
        v for k, v in energy.items() if k.startswith("train_") and k.endswith("_j") and k != "train_j"
    )
    assert energy["train_j"] == pytest.approx(parts)
    afd = model[1].afd
    calibration_reads = 2 * afd.calibration_reads * afd.calibration_points * hidden  # neurons and twins
    assert energy["calibration_j"] > 0
    assert model[1].calibration_reads[0] == calibration_reads
    assert energy["inference_mtj_read_j"] > 0 and energy["inference_j"] > 0  # hidden reads per test sample
    assert energy["inference_j"] * n_test == pytest.approx(
        sum(energy[k] for k in energy if k.startswith("inference_") and k != "inference_j") * n_test
    )


def test_a_state_restores_its_chip_and_transfer_keeps_the_target_chip(runs):
    model = runs[0][0]
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    tensor_bytes = sum(t.numel() * t.element_size() for t in state.values())
    assert buffer.getbuffer().nbytes < 1.1 * tensor_bytes + 20_000  # tensors plus the zip's headers

    torch.manual_seed(5)  # another chip: other devices, another calibration
    other = torch.nn.Sequential(DWLinear(64, 32), MTJActivation(32), DWLinear(32, 10))
    assert not torch.equal(other.state_dict()["1.neurons.i0_a"], state["1.neurons.i0_a"])
    other.load_state_dict(state)
    for key, value in state.items():
        assert torch.equal(other.state_dict()[key], value), key

    torch.manual_seed(6)
    target = torch.nn.Sequential(DWLinear(64, 32), MTJActivation(32), DWLinear(32, 10))
    own = {k: v.clone() for k, v in target.state_dict().items()}
    kept = transfer_weights(target, state)
    assert "1.neurons.i0_a" in kept and "0.synapses.velocity" in kept
    after = target.state_dict()
    assert torch.equal(after["1.neurons.i0_a"], own["1.neurons.i0_a"])
    assert torch.equal(after["0.synapses.u"], state["0.synapses.u"])
