"""DANP as the authors ran it: MNIST's 60k at x/255, the shared trace stream, CIFAR-10/100 from
``data.dir`` (generated here in the standard python layouts) with their augmentation."""

import json
import os
import pickle

import numpy as np
import pytest
import torch
from cli_helpers import run_summary, spinlearn
from data_helpers import tiny_cifar, tiny_cifar100

from spinlearn import data
from spinlearn.errors import ConfigError, DataError
from spinlearn.experiments import EXPERIMENTS, danp_data
from spinlearn.experiments.registry import SeedResult
from spinlearn.learning import danp
from spinlearn.learning.danp_noise import NoiseConfig, layer_sources
from spinlearn.report import _section, experiments_with_targets
from spinlearn.runner import aggregate


def test_mnist_trains_on_the_standard_60k_scaled_by_255():
    d = danp_data.load(danp_data.DANPData(), 42, torch.device("cpu"))
    assert len(d.train) == 60_000 and len(d.test[1]) == 10_000 and d.classes == 10
    top = float(d.train.x.max()) * data.MNIST_STD + data.MNIST_MEAN  # a pixel of 255
    assert top == pytest.approx(1.0, abs=1e-6)
    splits = data.mnist()  # the validation part is the 60k's tail, in order
    tail = (d.train.x[-10_000:].numpy() * data.MNIST_STD + data.MNIST_MEAN) * 255
    np.testing.assert_allclose(tail, splits.x_val * 256, atol=1e-3)
    assert len(danp_data._authors_scale(splits, full_train=False).x_train) == 50_000


def _trace(tmp_path, n=1000):
    path = tmp_path / "trace.csv"
    path.write_text("V\n" + "\n".join(str(float(k)) for k in range(n)) + "\n")
    return NoiseConfig(kind="trace", trace_path=str(path), trace_mode="shared_stream")


def test_shared_stream_runs_one_trace_row_major_through_the_layers(tmp_path):
    config = _trace(tmp_path)
    net = danp.DANPNetwork([2, 3, 2], torch.Generator().manual_seed(0), danp.DANPConfig(variant="np"), config)
    with torch.no_grad():
        for p in net.forward_parameters():
            p.zero_()
    out = net(torch.ones(4, 2), noisy=True)  # zero weights: the output is the last layer's noise
    # layer 1 took samples 0..11 (4 rows x 3 nodes), layer 2 the next 8, row by row
    assert out.tolist() == torch.arange(12, 20, dtype=torch.float32).view(4, 2).tolist()
    batch = 5  # a DANP step: layer 1's two passes (2B rows), then layer 2's, in one stream
    danp.danp_step(net, torch.ones(batch, 2), torch.zeros(batch, dtype=torch.long))
    assert net.noise_sources[0].state_dict() == {"position": 20 + 2 * batch * (3 + 2)}
    sources = layer_sources([3, 2], torch.Generator(), config)
    assert sources[0](1).tolist() == [[0.0, 1.0, 2.0]] and sources[1](1).tolist() == [[3.0, 4.0]]
    with pytest.raises(ConfigError, match="shared_stream is for noise kind trace"):
        NoiseConfig(trace_mode="shared_stream")


def test_per_node_trace_reads_each_node_from_its_own_offset(tmp_path):
    config = NoiseConfig(kind="trace", trace_path=_trace(tmp_path).trace_path)
    rows = layer_sources([3], torch.Generator().manual_seed(0), config)[0](2)
    assert (rows[1] - rows[0]).tolist() == [1.0, 1.0, 1.0]  # each node steps through time
    assert len(set(rows[0].tolist())) == 3 and rows[0, 1] != rows[0, 0] + 1  # not one row-major stream


def _windows(image, padded):
    """Every (top, left, flipped) whose window of ``padded`` is ``image``."""
    found = []
    for top in range(9):
        for left in range(9):
            window = padded[:, top : top + 32, left : left + 32]
            found += [
                (top, left, f) for f in (False, True) if torch.equal(image, window.flip(-1) if f else window)
            ]
    return found


def test_augment_crops_a_padded_window_and_flips_half():
    images = 1 + torch.arange(3 * 32 * 32, dtype=torch.float32).view(1, 3, 32, 32).repeat(200, 1, 1, 1)
    out = danp_data.augment(images, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images[0], (4, 4, 4, 4))
    found = [_windows(image, padded) for image in out]
    assert all(len(f) == 1 for f in found)  # each output is one shifted window, flipped or not
    tops, lefts, flips = zip(*(f[0] for f in found), strict=True)
    assert set(tops) == set(lefts) == set(range(9)) and 0.4 < np.mean(flips) < 0.6


def test_cifar100_reads_fine_labels_through_the_safe_loader(tmp_path):
    root = tiny_cifar100(tmp_path, n=60, classes=5)
    splits = data.cifar100(str(tmp_path))
    assert data.cifar100_classes(str(tmp_path)) == tuple(f"class{k}" for k in range(5))
    assert len(splits.x_train) + len(splits.x_val) == 50 and splits.x_test.shape == (10, 3, 32, 32)
    with pytest.raises(DataError, match=r"needs data\.dir: a folder holding cifar-100-python"):
        data.cifar100(None)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(root / "train", "wb") as fh:
        pickle.dump({b"data": Payload(), b"fine_labels": [0]}, fh)
    with pytest.raises(DataError, match="refusing to load"):
        data.cifar100(str(root))
    assert not marker.exists()


def test_cifar_danp_runs_on_generated_sets_and_needs_data_dir(tmp_path):
    tiny_cifar100(tmp_path / "c100", n=48, classes=4)
    args = ["--set", "model.hidden=[16]", "--set", "train.epochs=2", "--set", "compare.gaussian=false"]
    summary = run_summary(tmp_path / "o", "cifar100-danp", "--set", f"data.dir={tmp_path / 'c100'}", *args)
    m = summary["metrics"]
    assert m["train_samples_mean"] == 40 and 0 <= m["test_accuracy_min"] <= m["test_accuracy_max"] <= 1
    assert {"train_accuracy_mean", "bp_train_accuracy_mean", "np_test_accuracy_mean"} <= set(m)
    config = (tmp_path / "o" / "config.yaml").read_text()
    assert "augment: true" in config and "lr: 2.4414e-05" in config and "decor_lr: 9.5367e-08" in config
    # no published CIFAR figure: reproduce (the experiments with a target) never needs the files
    assert not {"cifar10-danp", "cifar100-danp"} & {e.name for e in experiments_with_targets()}
    done = spinlearn("run", "cifar10-danp", "--out", str(tmp_path / "none"), "--quiet")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "needs data.dir" in done.stderr and "data_batch_1..5" in done.stderr


def test_cifar10_feed_holds_every_training_image_and_normalises_like_the_authors(tmp_path):
    directory = tiny_cifar(tmp_path / "c10", n=60)
    cfg = danp_data.DANPData(dataset="cifar10", dir=str(directory), augment=True)
    d = danp_data.load(cfg, 0, torch.device("cpu"))
    assert len(d.train) == 50 and d.features == 3072 and d.train.augments
    raw = np.concatenate([data._cifar_batch(directory / n)[0] for n in data.CIFAR_BATCHES])
    assert torch.equal(d.train.x.flatten(1), torch.as_tensor(raw))
    x_test = data._cifar_batch(directory / "test_batch")[0].reshape(-1, 3, 32, 32) / 255
    mean, std = np.array(danp_data.CIFAR_MEAN)[:, None, None], np.array(danp_data.CIFAR_STD)[:, None, None]
    np.testing.assert_allclose(d.test[0].numpy(), ((x_test - mean) / std).reshape(10, -1), atol=1e-5)
    with pytest.raises(ConfigError, match="augment = true is for cifar10 and cifar100"):
        danp_data.DANPData(augment=True)


def test_aggregate_gives_min_and_max_over_seeds():
    results = [SeedResult({"acc": v}) for v in (0.9, 0.8, 0.95)]
    out = aggregate(results)
    assert (out["acc_min"], out["acc_max"]) == (0.8, 0.95) and out["acc_mean"] == pytest.approx(0.8833333)
    assert json.dumps(out)  # plain floats
    summary = {"metrics": out, "seeds": [42, 43, 44], "runtime_s": 1.0, "device": "cpu", "plots": []}
    section = _section(EXPERIMENTS["mnist-danp"], summary)
    assert "| metric | mean | std | min | max |" in section
    assert "| acc | 0.883333 | 0.0764 | 0.8 | 0.95 |" in section


@pytest.mark.slow
def test_cifar_danp_killed_and_resumed_gives_the_uninterrupted_metrics(tmp_path):
    from test_resume import assert_resume_gives_the_uninterrupted_metrics

    directory = tiny_cifar(tmp_path / "c10", n=48)  # augmentation drawn anew each epoch: restored?
    args = ["cifar10-danp", "--set", f"data.dir={directory}", "--set", "model.hidden=[8]"]
    args += ["--set", "train.epochs=3", "--set", "compare.gaussian=false", "--set", "compare.np=false"]
    assert_resume_gives_the_uninterrupted_metrics(tmp_path, "record", 2, *args)
