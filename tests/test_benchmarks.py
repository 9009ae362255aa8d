"""The speed benchmarks run end to end and report what `make bench` promises (no timing is asserted)."""

import json

from benchmarks import afd_vs_torch
from spinlearn.experiments.mnist import MNISTConfig


def test_afd_vs_torch_times_the_network_mnist_afd_trains():
    cfg = MNISTConfig()
    net = afd_vs_torch.mnist_afd_network()
    assert net.sizes == (784, *cfg.model.hidden, 10)
    assert (net.batch, net.train.optimizer, net.train.lr) == (cfg.train.batch_size, "adam", cfg.train.lr)


def test_afd_vs_torch_reports_both_networks_and_memory():
    result = afd_vs_torch.run(epochs=1, batches=2)
    for key in ("ratio", "ratio_4x256_sgd", "afd_epoch_s_median", "tanh_epoch_s_median_4x256_sgd"):
        assert result[key] > 0, key
    assert result["afd_peak_added_rss_mib"] > result["tanh_peak_added_rss_mib"] > 0  # the tables
    assert result["sizes"] == [784, 512, 512, 512, 512, 10] and result["optimizer"] == "adam"
    json.dumps(result)  # what --json prints
