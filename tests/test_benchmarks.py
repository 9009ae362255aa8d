"""The speed benchmarks run end to end and report what `make bench` promises (no timing is asserted)."""

import json
from dataclasses import replace

import torch

from benchmarks import afd_vs_torch
from spinlearn.experiments.mnist import MNISTConfig


def test_afd_vs_torch_times_the_network_mnist_afd_trains():
    cfg = MNISTConfig()
    net = afd_vs_torch.mnist_afd_network()
    assert net.sizes == (784, 512, 512, 512, 512, 10) == (784, *cfg.model.hidden, 10)
    assert (net.batch, net.train) == (128, cfg.train) and net.train.optimizer == "adam"
    earlier = afd_vs_torch.earlier_network()
    assert earlier.sizes == (784, 256, 256, 256, 256, 10) and earlier.train.optimizer == "sgd"


def test_afd_vs_torch_reports_both_networks_and_memory():
    small = afd_vs_torch.Network((784, 64, 64, 64, 64, 10), 32, MNISTConfig().train)
    result = afd_vs_torch.run(epochs=1, batches=2, net=small, earlier=replace(small, sizes=(784, 32, 10)))
    assert result["sizes"] == [784, 64, 64, 64, 64, 10] and result["optimizer"] == "adam"
    times = ("afd_epoch_s_median", "tanh_epoch_s_median", "afd_epoch_s_median_4x256_sgd")
    assert all(result[key] > 0 for key in times)
    assert result["ratio"] == result["afd_epoch_s_median"] / result["tanh_epoch_s_median"]
    assert result["afd_peak_added_rss_mib"] > result["tanh_peak_added_rss_mib"] > 0  # the tables
    json.dumps(result)  # what --json prints


def test_afd_vs_torch_reads_through_the_fused_step_with_the_energy_ledger():
    """What is timed is the experiment's path: fused reads, each booked in the ledger."""
    sizes = (784, 16, 16, 10)
    model = afd_vs_torch._model("afd", sizes, seed=0)
    x, y = afd_vs_torch._data(afd_vs_torch.Network(sizes, 8, MNISTConfig().train), 1)
    ledger = model[1].backend.ledger
    before = ledger.counts[ledger.phase]["mtj_read"]  # the calibration's reads
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert model[1]._fused_step is not None and model[3]._fused_step is not None
    assert ledger.counts[ledger.phase]["mtj_read"] - before == 2 * 8 * (16 + 16)  # neurons and twins


def test_chip_vs_torch_times_the_chip_against_its_float_twin():
    from benchmarks import chip_vs_torch

    chip, _ = chip_vs_torch._variant("chip")
    assert [type(m).__name__ for m in chip] == ["DWLinear", "MTJActivation", "DWLinear"]
    result = chip_vs_torch.run(rounds=1)
    assert result["ratio"] == result["chip_step_s_median"] / result["float_step_s_median"] > 0
