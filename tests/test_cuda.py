"""The GPU path: runs only where CUDA is present (CI runs the CPU path)."""

import json
import subprocess
import sys

import pytest
import torch
from data_helpers import tiny_cifar

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@pytest.mark.parametrize(
    "args",
    [
        ["iris-afd", "--set", "train.epochs=3"],
        ["mnist-afd", "--set", "data.dataset=digits", "--set", "train.epochs=2"],
        ["mnist-kd", "--set", "data.dataset=digits", "--set", "train.epochs=2", "--set", "teacher.epochs=1"],
        ["afd-gradcheck", "--set", "sweep.points=5"],
        ["mnist-dw-sgld", "--set", "data.dataset=digits", "--set", "train.epochs=2"],
    ],
)
def test_experiments_run_on_cuda(tmp_path, args):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "spinlearn",
            "run",
            *args,
            "--device",
            "cuda",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["device"] == "cuda"


def test_cifar10_dw_resnet18_runs_full_width_on_cuda_and_reports_its_step_time(tmp_path):
    """Issue 5's GPU item: the full-width ResNet-18 on generated CIFAR-format batches."""
    directory = tiny_cifar(tmp_path / "cifar", n=1200)
    args = ["run", "cifar10-dw-resnet18", "--device", "cuda", "--set", f"data.dir={directory}"]
    args += [
        "--set",
        "train.epochs=2",
        "--set",
        "posterior.samples=2",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "spinlearn", *args], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["device"] == "cuda"
    t = summary["timing"]
    assert t["dw_seconds_per_step_mean"] > 0 and t["float_sgld_seconds_per_step_mean"] > 0
    dw, fl = t["dw_seconds_per_step_mean"], t["float_sgld_seconds_per_step_mean"]
    print(f"DW-SGLD step {dw:.4f} s, float SGLD step {fl:.4f} s")  # for the closing note: pytest -s
