"""Checkpoint and resume: a run killed with SIGKILL and continued with ``--resume`` gives the metrics
of an uninterrupted run, byte for byte; bad checkpoints are refused in one line.

Most kills are sent by the run to itself at a chosen point (``KILLER`` below wraps the CLI in the
subprocess and sends SIGKILL to its own process after the N-th epoch record or the N-th checkpoint
write), so the kill lands where the test means it to however fast the machine is; one test kills
from outside, as a user's ``kill -9`` does.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from cli_helpers import spinlearn

KILLER = """
import os, signal, sys
from spinlearn import checkpoint, cli, runner
where, after = sys.argv[1], int(sys.argv[2])
calls = [0]
def killing(original):
    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        calls[0] += 1
        if calls[0] == after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapped
if where == "record":
    runner.write_jsonl_atomic = killing(runner.write_jsonl_atomic)
else:
    checkpoint.Checkpoint.save = killing(checkpoint.Checkpoint.save)
sys.exit(cli.main(sys.argv[3:]))
"""


def killed_run(where: str, after: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", KILLER, where, str(after), *args], capture_output=True, text=True, timeout=600
    )


def summary(out) -> dict:
    return json.loads((out / "summary.json").read_text())


def records(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_resume_gives_the_uninterrupted_metrics(tmp_path, where: str, after: int, *args: str) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    done = spinlearn("run", *args, "--out", str(whole), "--quiet")
    assert done.returncode == 0, done.stderr
    killed = killed_run(where, after, "run", *args, "--out", str(cut), "--quiet")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (cut / "summary.json").exists()
    resumed = spinlearn("run", *args, "--out", str(cut), "--quiet", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert json.dumps(summary(cut)["metrics"]) == json.dumps(summary(whole)["metrics"])
    assert summary(cut).get("energy") == summary(whole).get("energy")
    assert records(cut) == records(whole)


DIGITS_MLP = ["--set", "data.dataset=digits", "--set", "model.hidden=[24,24]", "--set", "train.epochs=3"]
# 180 steps an epoch: within the resumed epochs the read-noise pool draws its offsets anew, from the
# run's device generator, which must have been restored
DIGITS_MLP += ["--set", "train.batch_size=8"]
CASES = {
    "mnist-afd": ("record", 2, "mnist-afd", *DIGITS_MLP, "--set", "baseline.tanh=false"),
    "mnist-dw-sgld": (
        "record",
        4,
        "mnist-dw-sgld",
        *("--set", "data.dataset=digits", "--set", "train.epochs=3", "--set", "train.batch_size=64"),
        *("--set", "model.hidden=[32]", "--set", "data.eval_subset=0", "--set", "posterior.samples=2"),
    ),
    "mnist-danp": (
        "record",
        2,
        "mnist-danp",
        *("--set", "data.dataset=digits", "--set", "train.epochs=3", "--set", "model.hidden=[32]"),
        *("--set", "train.lr=1e-3", "--set", "compare.gaussian=false", "--set", "compare.bp=false"),
    ),
    "hopfield-35": ("save", 4, "hopfield-35", "--set", "probes.per_pattern=4"),
    "hopfield-capacity": (  # one sweep point per checkpoint
        "record",
        2,
        "hopfield-capacity",
        *("--set", "capacity.sizes=[40]", "--set", "capacity.alphas=[0.05,0.1,0.2]"),
        *("--set", "train.epochs=3", "--set", "capacity.max_probes=8"),
    ),
    # teacher (2 epochs), student with KD (2), student without (2): killed in the last, the two
    # finished stages replay from their final snapshots
    "mnist-kd-in-the-third-network": (
        "record",
        5,
        "mnist-kd",
        *("--set", "data.dataset=digits", "--set", "train.epochs=2", "--set", "teacher.epochs=2"),
        *("--set", "model.hidden=[24]", "--set", "teacher.channels=4"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_killed_and_resumed_gives_the_uninterrupted_metrics(tmp_path, case):
    where, after, *args = CASES[case]
    assert_resume_gives_the_uninterrupted_metrics(tmp_path, where, after, *args)


def test_kill_9_from_outside_then_resume_gives_the_uninterrupted_metrics(tmp_path):
    args = ["iris-afd", "--seeds", "2", "--set", "train.epochs=10", "--quiet"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert spinlearn("run", *args, "--out", str(whole)).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "spinlearn", "run", *args, "--out", str(cut)])
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if (cut / "metrics.jsonl").exists() and len(records(cut)) >= 12:  # in the second seed
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before the kill"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert spinlearn("run", *args, "--out", str(cut), "--resume").returncode == 0
    assert json.dumps(summary(cut)["metrics"]) == json.dumps(summary(whole)["metrics"])


def test_a_finished_seed_is_not_trained_again(tmp_path):
    out = tmp_path / "run"
    args = ["iris-afd", "--seeds", "2", "--set", "train.epochs=3", "--out", str(out), "--quiet"]
    # seed 0: three epochs and its result, then seed 1's first epoch
    assert killed_run("save", 5, "run", *args).returncode == -signal.SIGKILL
    saved = torch.load(out / "checkpoints" / "seed0.pt", weights_only=True)
    assert "result" in saved
    (tmp_path / "seed0.pt").write_bytes((out / "checkpoints" / "seed0.pt").read_bytes())
    resumed = killed_run("save", 1, "run", *args, "--resume")  # the first save: seed 1's epoch 2
    assert resumed.returncode == -signal.SIGKILL
    assert [(r["seed"], r["epoch"]) for r in records(out)] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2)]
    assert (out / "checkpoints" / "seed0.pt").read_bytes() == (tmp_path / "seed0.pt").read_bytes()


# -- refusals: one line, exit 2 ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def started_run(tmp_path_factory):
    """A run killed after its second epoch's checkpoint, made once and copied by each test."""
    out = tmp_path_factory.mktemp("started") / "run"
    args = ["iris-afd", "--set", "train.epochs=3", "--out", str(out), "--quiet"]
    assert killed_run("save", 2, "run", *args).returncode == -signal.SIGKILL
    return out


@pytest.fixture
def started_copy(tmp_path, started_run):
    out = tmp_path / "run"
    shutil.copytree(started_run, out)
    return out, ["iris-afd", "--set", "train.epochs=3", "--out", str(out), "--quiet"]


def _refused(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for word in words:
        assert word in done.stderr


def test_resume_with_another_config_is_refused(tmp_path, started_copy):
    _out, args = started_copy
    _refused(spinlearn("run", *args, "--set", "train.lr=0.01", "--resume"), "another config")


def test_resume_of_another_experiment_is_refused(tmp_path, started_copy):
    out, _args = started_copy
    other = ["iris-tanh", "--set", "train.epochs=3", "--set", "model.activation=mtj"]
    _refused(spinlearn("run", *other, "--out", str(out), "--quiet", "--resume"), "experiment")


def test_a_checkpoint_from_another_version_is_refused(tmp_path, started_copy):
    out, args = started_copy
    path = out / "checkpoints" / "seed0.pt"
    saved = torch.load(path, weights_only=True)
    torch.save({**saved, "spinlearn_version": "99.0"}, path)
    _refused(spinlearn("run", *args, "--resume"), "spinlearn_version", "99.0")


def test_a_truncated_checkpoint_is_refused(tmp_path, started_copy):
    out, args = started_copy
    path = out / "checkpoints" / "seed0.pt"
    path.write_bytes(path.read_bytes()[:1000])
    _refused(spinlearn("run", *args, "--resume"), "not a readable checkpoint")


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_does_not_run(tmp_path, started_copy):
    out, args = started_copy
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    torch.save({"format": 1, "payload": Payload()}, out / "checkpoints" / "seed0.pt")
    _refused(spinlearn("run", *args, "--resume"), "not a readable checkpoint")
    assert not marker.exists()


def test_resume_of_an_empty_directory_is_refused(tmp_path):
    _refused(spinlearn("run", "iris-afd", "--out", str(tmp_path / "none"), "--resume"), "no run to resume")


def test_a_stage_object_cannot_hide_one_of_the_runs_own_under_its_name():
    from spinlearn.checkpoint import Checkpoint

    ckpt = Checkpoint(common={"run.generator": torch.Generator()})
    with pytest.raises(ValueError, match="would hide the run's own objects"):
        list(ckpt.epochs("train", 2, {"run.generator": torch.Generator()}))


def test_a_pool_restored_from_its_state_hands_out_the_same_numbers():
    from spinlearn.noise import GaussianPool

    a = GaussianPool(torch.Generator().manual_seed(3), offsets_per_draw=16)
    for _ in range(5):
        a.take((1000,))
    state, generator_state = a.state_dict(), a.generator.get_state()
    b = GaussianPool(torch.Generator(), offsets_per_draw=16)
    b.load_state_dict(state)
    b.generator.set_state(generator_state)
    for _ in range(40):  # past the offsets drawn ahead
        assert torch.equal(a.take((1000,)), b.take((1000,)))
