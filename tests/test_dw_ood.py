"""What a posterior is for (issue 28): NLL, Brier, entropy AUROC and the out-of-distribution inputs."""

import math

import pytest
import torch
from cli_helpers import run_summary

from spinlearn import cli
from spinlearn.errors import ConfigError
from spinlearn.experiments import ood
from spinlearn.experiments.mnist import Tensors
from spinlearn.metrics import brier, entropy_auroc, nll, predictive_entropy


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_brier_and_nll_on_a_hand_example():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
    labels = torch.tensor([0, 1, 0])
    # (0.1^2 + 0.1^2) + (0.6^2 + 0.6^2) + (0.5^2 + 0.5^2), over 3
    assert brier(probs, labels) == pytest.approx((0.02 + 0.72 + 0.5) / 3)
    assert nll(probs, labels) == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.5)) / 3)
    assert brier(torch.eye(3), torch.tensor([0, 1, 2])) == 0.0
    assert brier(torch.eye(3), torch.tensor([1, 2, 0])) == pytest.approx(2.0)


def test_entropy_auroc_counts_ties_as_one_half():
    certain, leaning, uniform = [1.0, 0.0], [0.9, 0.1], [0.5, 0.5]
    h = predictive_entropy(torch.tensor([certain, leaning, uniform]))
    assert h.tolist() == pytest.approx([0.0, -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)), math.log(2)])
    inside = torch.tensor([certain, leaning, uniform])
    outside = torch.tensor([leaning, uniform])
    # out "leaning" beats certain, ties leaning, loses to uniform: 1 + 0.5 + 0;
    # out "uniform" beats certain and leaning, ties uniform: 1 + 1 + 0.5; 4 of 6 pairs
    assert entropy_auroc(inside, outside) == pytest.approx(4 / 6)
    assert entropy_auroc(outside, inside) == pytest.approx(2 / 6)
    assert entropy_auroc(inside, inside) == pytest.approx(0.5)
    assert math.isnan(entropy_auroc(inside, outside[:0]))


def test_generated_images_are_deterministic_in_the_seed_and_in_range():
    shape = (1, 8, 8)
    for make in (ood.noise_images, ood.shape_images):
        a, b, c = make(50, shape, gen(1)), make(50, shape, gen(1)), make(50, shape, gen(2))
        assert a.shape == (50, *shape) and torch.equal(a, b) and not torch.equal(a, c)
        assert float(a.min()) >= 0 and float(a.max()) <= 1
    shapes = ood.shape_images(200, (3, 16, 16), gen(3))
    covered = (shapes > 0).float().mean((1, 2, 3))
    assert float(covered.min()) > 0.15  # broad filled areas, unlike a digit's strokes


def test_rotation_turns_each_image_a_quarter():
    x = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 9)
    turned = ood.rotated(x, (1, 3, 3))
    assert turned[0].reshape(3, 3).tolist() == [[2, 5, 8], [1, 4, 7], [0, 3, 6]]
    again = x
    for _ in range(4):
        again = ood.rotated(again, (1, 3, 3))
    assert torch.equal(again, x)


def _tensors(features: int, n: int = 40, classes: int = 4) -> Tensors:
    g = gen(5)
    x, y = torch.randn(n, features, generator=g), torch.arange(n) % classes
    return Tensors((x, y), (x, y), (x[:30] + 1, y[:30]), 0, classes)


def test_probes_span_the_training_range_and_only_images_get_shapes_and_rotations():
    d = _tensors(16)
    images = ood.probes(d, (1, 4, 4), 25, seed=3)
    assert list(images.kinds) == ["noise", "shapes", "rotated"]
    assert [len(images.inputs[r]) for r in images.kinds.values()] == [25, 25, 25]
    generated, x = images.inputs[:50], d.train[0]  # noise and shapes
    assert float(x.min()) <= float(generated.min()) and float(generated.max()) <= float(x.max())
    assert torch.equal(images.inputs, ood.probes(d, (1, 4, 4), 25, seed=3).inputs)
    flat = _tensors(5)
    rows = ood.probes(flat, (5,), 25, seed=3)  # not an image: noise alone, each feature in its range
    assert list(rows.kinds) == ["noise"] and rows.inputs.shape == (25, 5)
    x = flat.train[0]
    assert bool((rows.inputs >= x.min(0).values).all() and (rows.inputs <= x.max(0).values).all())


def test_held_out_class_leaves_the_training_set_only():
    d = _tensors(3)
    k = ood.held_out_class(None, seed=6, classes=4)
    assert k == 2 and ood.held_out_class(1, seed=6, classes=4) == 1
    without = ood.without_class(d, k)
    assert not bool((without.train[1] == k).any()) and len(without.train[1]) == 30
    assert torch.equal(without.test[1], d.test[1])
    with pytest.raises(ConfigError, match=r"ood\.held_out_class = 4"):
        ood.held_out_class(4, seed=0, classes=4)


def test_margins_are_the_least_over_the_kinds_and_nan_propagates():
    m = {"nll_posterior": 0.30, "nll_single": 0.32}
    for kind, (post, single, sgd) in {"noise": (0.9, 0.8, 0.85), "class": (0.7, 0.69, 0.72)}.items():
        m |= {
            f"ood_auroc_{kind}_posterior": post,
            f"ood_auroc_{kind}_single": single,
            f"ood_auroc_{kind}_sgd": sgd,
        }
    margins = ood.margins(m, ["noise", "class"])
    assert margins["nll_posterior_minus_single"] == pytest.approx(-0.02)
    assert margins["ood_auroc_posterior_minus_single"] == pytest.approx(0.01)
    assert margins["ood_auroc_posterior_minus_sgd"] == pytest.approx(-0.02)
    m["ood_auroc_class_sgd"] = float("nan")
    assert math.isnan(ood.margins(m, ["noise", "class"])["ood_auroc_posterior_minus_sgd"])
    no_sgd = {k: v for k, v in m.items() if "_sgd" not in k}
    assert "ood_auroc_posterior_minus_sgd" not in ood.margins(no_sgd, ["noise", "class"])


def test_a_tiny_dw_run_reports_every_uncertainty_metric(tmp_path):
    m = run_summary(
        tmp_path,
        "mnist-dw-sgld",
        *("--set", "data.dataset=digits", "--set", "model.hidden=[16]", "--set", "train.epochs=1"),
        *("--set", "posterior.samples=2", "--set", "ood.size=64", "--set", "compare.float_sgld=false"),
    )["metrics"]
    kinds = ("noise", "shapes", "rotated", "class")
    names = [f"{s}_{v}" for s in ("nll", "brier") for v in ("final", "single", "posterior")]
    names += [f"{s}_sgd{w}" for s in ("nll", "brier") for w in ("", "_posterior")]
    names += [
        f"ood_auroc_{k}_{v}" for k in kinds for v in ("final", "single", "posterior", "sgd", "sgd_posterior")
    ]
    for name in names:
        assert 0 <= m[f"{name}_mean"] <= (2 if name.startswith("brier") else 1e3), name
        if name.startswith("ood"):
            assert m[f"{name}_mean"] <= 1, name
    assert m["held_out_class_mean"] == 0  # seed 0
    least = min(m[f"ood_auroc_{k}_posterior_mean"] - m[f"ood_auroc_{k}_sgd_mean"] for k in kinds)
    assert m["ood_auroc_posterior_minus_sgd_mean"] == pytest.approx(least)
    assert m["nll_posterior_minus_single_mean"] == pytest.approx(
        m["nll_posterior_mean"] - m["nll_single_mean"]
    )
    assert {"ece_single_mean", "ece_posterior_mean", "confidence_gap_posterior_mean", "ece_gap_mean"} <= set(
        m
    )


def test_a_held_out_class_the_data_lacks_is_one_line_and_exit_2_before_training(tmp_path, capsys):
    args = ["run", "mnist-dw-sgld", "--set", "data.dataset=iris", "--set", "ood.held_out_class=3"]
    assert cli.main([*args, "--out", str(tmp_path), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "ood.held_out_class = 3" in lines[0]
    assert not (tmp_path / "metrics.jsonl").exists()
