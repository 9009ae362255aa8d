"""The speed benchmarks run end to end and report what `make bench` promises (no timing is asserted)."""

import json
from dataclasses import replace

import pytest
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


def test_ratio_spread_is_over_the_rounds_measured_back_to_back():
    from benchmarks import ratio_spread

    times = {"device": [2.0, 3.0, 5.0, 8.0], "digital": [1.0, 2.0, 2.0, 4.0]}
    spread = ratio_spread(times, "device", "digital")  # rounds: 2, 1.5, 2.5, 2
    assert (spread["median"], spread["min"], spread["max"], spread["rounds"]) == (2.0, 1.5, 2.5, 4)
    assert spread["min"] <= spread["q1"] <= spread["median"] <= spread["q3"] <= spread["max"]


def test_bench_writes_results_json_with_the_spread_and_the_docs_show_it(tmp_path):
    import importlib.util
    from pathlib import Path

    from benchmarks import dw_sgld_vs_sgd
    from benchmarks.__main__ import summary_line, write_results

    result = dw_sgld_vs_sgd.run(rounds=2)
    assert "dw_sgld_vs_sgd: ratio" in summary_line("dw_sgld_vs_sgd", result) and "quartiles" in summary_line(
        "dw_sgld_vs_sgd", result
    )
    out = tmp_path / "results.json"
    write_results({"dw_sgld_vs_sgd": result}, "cpu", out)
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and data["machine"]["cpus"] >= 1
    assert data["results"]["dw_sgld_vs_sgd"]["ratio_rounds"]["rounds"] == 2
    hooks_path = Path(__file__).parent.parent / "docs" / "_hooks.py"
    spec = importlib.util.spec_from_file_location("docs_hooks_for_bench", hooks_path)
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    hooks.BENCH_RESULTS = out
    assert f"| `dw_sgld_vs_sgd` | {result['ratio']:.3f} |" in hooks.bench_results_table()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the CUDA benchmarks would run")
def test_cuda_bench_without_a_gpu_is_skipped_with_one_line(capsys):
    from benchmarks.__main__ import main

    assert main(["all", "--device", "cuda"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [
        "benchmarks: --device cuda: no CUDA device here (torch.cuda.is_available() is False); skipped"
    ]


def test_profile_lists_the_top_ops_with_their_shares():
    from benchmarks import profile

    a = torch.randn(64, 64)
    result = profile.top_ops(lambda: [torch.tanh(a @ a) for _ in range(3)], top=3)
    ops = [op for op, _, _ in result["ops"]]
    assert len(ops) == 3 and any("mm" in op for op in ops)
    assert 0 < sum(share for _, _, share in result["ops"]) + result["outside_share"] <= 1 + 1e-9


def test_profile_labels_the_numba_kernels_and_restores_them():
    from benchmarks import profile
    from spinlearn.devices.domain_wall import DomainWall
    from spinlearn.learning import sgld_fused
    from spinlearn.learning.sgld import DWSGLD, SGLDConfig
    from spinlearn.nn.dw import DWLinear

    layer = DWLinear.from_weight(torch.zeros(4, 30), torch.zeros(4), DomainWall(), 0.5, torch.Generator())
    opt = DWSGLD(layer.parameters(), 1e-3, SGLDConfig(temperature=0.1), 100, torch.Generator().manual_seed(0))

    def step():
        for p in layer.parameters():
            p.grad = torch.ones_like(p)
        opt.step()

    before = sgld_fused.program_window
    result = profile.top_ops(step, top=50)
    assert "kernel: sgld_fused.program_window" in [op for op, _, _ in result["ops"]]
    assert sgld_fused.program_window is before
