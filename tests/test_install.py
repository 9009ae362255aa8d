"""spinlearn installs as a library: without extras, beside the torch an environment already has."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("numba", "pyvisa", "pymeasure", "ray", "mlflow", "tensorboard", "pyarrow", "pyvisa_sim")


def _run(*args, cwd=None):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_a_fresh_environment_without_extras_keeps_its_torch_and_runs_iris(tmp_path):
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run(*pip, "torch==2.13.0")  # the environment's own torch, there before spinlearn
    _run(*pip, ROOT)  # no extras, not editable
    probe = (
        "import importlib.util, json, torch\n"
        f"print(json.dumps([torch.__version__, [m for m in {OPTIONAL!r} if importlib.util.find_spec(m)]]))"
    )
    version, optional = json.loads(_run(python, "-c", probe, cwd=tmp_path).stdout)
    assert version.startswith("2.13.0") and optional == []
    out = tmp_path / "run"  # run outside the checkout: the installed copy, not the source tree
    done = _run(
        venv / "bin" / "spinlearn", "run", "iris-afd", "--set", "train.epochs=2", "--out", out, cwd=tmp_path
    )
    assert "numba is not installed: the fused CPU kernels are off" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["metrics"]["test_accuracy_mean"] <= 1
    assert summary["run"]["git"] is None and summary["run"]["versions"]["numba"] is None
