"""Kept models: every run keeps each seed's model; `spinlearn evaluate` re-scores it in a fresh
process to the same accuracy; the file is its tensors, loads with weights_only, holds no table."""

import pytest
import torch
from cli_helpers import run_summary, spinlearn

import spinlearn as sl
from spinlearn.experiments import get
from spinlearn.experiments.common import make_backend, mtj_mlp
from spinlearn.experiments.kept import load_saved, model_path, save_model
from spinlearn.experiments.registry import RunContext, SeedResult
from spinlearn.nn import device_keys


def _scores(stdout: str) -> dict[int, tuple[float, float]]:
    """seed -> (re-evaluated, summary.json's) from `spinlearn evaluate`'s lines."""
    out = {}
    for line in stdout.splitlines():
        words = line.replace(":", "").replace("(", "").replace(")", "").split()
        out[int(words[1])] = (float(words[3]), float(words[5]))
    return out


@pytest.mark.parametrize(
    "name, settings",
    [
        ("iris-afd", ["--set", "train.epochs=4"]),
        # 360 test samples through four noisy MTJ layers: equal only if the read noise is the same
        (
            "mnist-afd",
            [
                *("--set", "data.dataset=digits", "--set", "model.hidden=[24,24]"),
                *(
                    "--set",
                    "train.epochs=1",
                    "--set",
                    "baseline.tanh=false",
                    "--set",
                    "device.variability=0.3",
                ),
            ],
        ),
        (  # noisy scores: every node's sMTJ noise must be drawn again as it was
            "digits-danp",
            [
                *("--set", "train.epochs=2", "--set", "compare.np=false"),
                *("--set", "compare.gaussian=false", "--set", "compare.bp=false"),
            ],
        ),
        (
            "mnist-dw-sgld",
            [
                *("--set", "data.dataset=digits", "--set", "model.hidden=[16]", "--set", "train.epochs=1"),
                *("--set", "compare.float_sgld=false", "--set", "device.read_noise=0.05"),
            ],
        ),
    ],
)
def test_evaluate_in_a_new_process_gives_the_summary_accuracy(tmp_path, name, settings):
    summary = run_summary(tmp_path, name, "--seeds", "2", *settings)
    done = spinlearn("evaluate", str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stderr
    scores = _scores(done.stdout)
    assert sorted(scores) == summary["seeds"]
    for seed, (again, recorded) in scores.items():  # printed to 6 digits; accuracies are k / n, n < 1e4
        assert again == recorded == pytest.approx(summary["per_seed"]["test_accuracy"][seed], abs=1e-6)
    model = sl.load_run(tmp_path, seed=1)
    assert isinstance(model, torch.nn.Module)
    # its chip came back with it (DANP's devices are its noise sources, restored with their generator)
    assert device_keys(model) or name == "digits-danp"


def test_a_kept_mnist_afd_model_is_the_size_of_its_tensors(tmp_path):
    exp = get("mnist-afd")
    cfg = exp.default_config()
    ctx = RunContext(seed=0, device=torch.device("cpu"), out_dir=tmp_path)
    backend = make_backend(cfg.device, ctx)
    model = mtj_mlp([784, *cfg.model.hidden, 10], "mtj", backend, cfg.afd, ctx.device, ctx.cpu_generator)
    path = save_model(
        tmp_path, 0, SeedResult({}, model=model, model_context={"generator": ctx.generator.get_state()})
    )
    saved = load_saved(tmp_path, 0)  # weights_only=True inside
    state = saved["model"]
    tensor_bytes = sum(t.numel() * t.element_size() for t in state.values())
    weights = sum(p.numel() * 4 for p in model.parameters())
    assert 4.7e6 < weights < 4.9e6  # 784-512x4-10
    assert path.stat().st_size < 1.1 * tensor_bytes
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert not any("table" in k or "noise" in k or "pool" in k for k in state)
    assert path == model_path(tmp_path, 0)


def test_evaluate_refuses_what_it_cannot_read(tmp_path):
    done = spinlearn("evaluate", str(tmp_path / "nothing"))
    assert (done.returncode == 2 and "holds no finished run" in done.stderr) or "cannot read" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
