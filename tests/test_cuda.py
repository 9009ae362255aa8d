"""The GPU path: runs only where CUDA is present (CI runs the CPU path)."""

import json
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@pytest.mark.parametrize(
    "args",
    [
        ["iris-afd", "--set", "train.epochs=3"],
        ["mnist-afd", "--set", "data.dataset=digits", "--set", "train.epochs=2"],
        ["mnist-kd", "--set", "data.dataset=digits", "--set", "train.epochs=2", "--set", "teacher.epochs=1"],
        ["afd-gradcheck", "--set", "sweep.points=5"],
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
