"""``spinlearn sweep`` on Ray Tune: a point gives the metrics of ``spinlearn run``; a real cluster
started apart is joined through ``--address``; a driver killed with its process group resumes with
no finished trial run again; a bad grid is one line and exit code 2 before Ray starts."""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cli_helpers import run_summary

from spinlearn import cli

HEAD = ["--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", "--block"]
TINY = ["--set", "train.epochs=1", "--set", "train.batch_size=40"]


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray head started as its own process group on loopback (``ray start --head --port 0
    --block``, a temp dir and a token of its own), killed whole at the end. Yields its address and
    the environment a driver needs to join it."""
    temp = Path(tempfile.mkdtemp(prefix="sl-ray-"))  # Ray's socket paths must stay under 107 bytes
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # single machine: every service on 127.0.0.1
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [
            str(ray_cli),
            "start",
            "--head",
            "--port=0",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp}",
            *HEAD,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        recorded = temp / "ray_current_cluster"
        _wait_for(lambda: recorded.exists() and recorded.read_text().strip(), 120, "the Ray head")
        yield recorded.read_text().strip(), env, temp
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _rows(out: Path) -> list[dict]:
    with open(out / "sweep.csv") as fh:
        return list(csv.DictReader(fh))


def test_a_sweep_on_a_cluster_joined_by_address_gives_the_metrics_of_spinlearn_run(tmp_path, ray_cluster):
    address, env, temp = ray_cluster
    spec = tmp_path / "sweep.yaml"
    spec.write_text("grid:\n  device.variability: [0, 0.1]\ntrain:\n  batch_size: 40\n")
    out = tmp_path / "sweep"
    where = ["--address", address, "--out", str(out), "--quiet", "--log-to", "tensorboard"]
    done = subprocess.run(
        [sys.executable, "-m", "spinlearn", "sweep", "iris-afd", "--config", str(spec), *TINY[:2], *where],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert list(temp.glob("session_*/logs/worker-*")), "no trial ran on the cluster"
    rows = _rows(out)
    assert [r["device.variability"] for r in rows] == ["0", "0.1"]
    assert all(r["status"] == "ok" and r["seeds"] == "1" for r in rows)
    assert (out / "sweep.md").exists() and (out / "sweep_device.variability.png").exists()
    alone = run_summary(tmp_path / "run", "iris-afd", *TINY, "--set", "device.variability=0.1")
    point = out / "device.variability=0.1" / "seed0"
    swept = json.loads((point / "summary.json").read_text())
    assert json.dumps(swept["metrics"]) == json.dumps(alone["metrics"])
    assert swept["energy"] == alone["energy"]
    assert (point / "metrics.jsonl").read_text() == (tmp_path / "run" / "metrics.jsonl").read_text()
    assert list((point / "tensorboard").glob("events.out.tfevents.*"))  # every trial logs its tracker
    recorded = json.loads((out / "sweep.json").read_text())
    assert recorded["rows"][1]["test_accuracy_mean"] == alone["metrics"]["test_accuracy"]


def _finished(out: Path) -> list[Path]:
    return sorted(out.glob("*/seed*/summary.json"))


def test_a_driver_killed_with_its_process_group_resumes_without_running_a_finished_trial(tmp_path):
    import spinlearn

    out = tmp_path / "sweep"
    args = ["iris-tanh", "--grid", "train.lr=0.05,0.1", "--seeds", "2", "--set", "train.epochs=12"]
    # The killed driver cannot remove its Ray temp dir: give it one of ours (short, for Ray's sockets).
    temp = tempfile.mkdtemp(prefix="sl-kill-")
    driver = subprocess.Popen(
        [sys.executable, "-m", "spinlearn", "sweep", *args, "--out", str(out), "--quiet"],
        env={**os.environ, "TMPDIR": temp},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: _finished(out) or driver.poll() is not None, 240, "a finished trial")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        shutil.rmtree(temp, ignore_errors=True)
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _finished(out)}
    assert 1 <= len(finished) < 4, "the kill must land between the first and the last trial"
    rows = spinlearn.sweep(
        "iris-tanh",
        {"train.lr": [0.05, 0.1]},
        seeds=2,
        overrides={"train.epochs": 12},
        out=out,
        resume=True,
        quiet=True,
    )
    assert [r["status"] for r in rows] == ["ok", "ok"] and [r["seeds"] for r in rows] == [2, 2]
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished} == finished
    assert len(_finished(out)) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "device.nosuch=0,1"], "unknown config key 'device.nosuch'"),
        (["--grid", "device.variability="], "no values"),
        (["--grid", "device.variability=0,1.5"], "device.variability = 1.5: must be"),
        (["--grid", "device.variability=0", "--set", "device.variability=0.1"], "both as --grid and"),
        (["--grid", "device.variability=0", "--seeds", "0"], "--seeds must be >= 1"),
        (["--grid", "train.lr=0.1", "--scheduler", "asha"], "needs --metric"),
        ([], "nothing to sweep"),
        (["--grid", "train.lr=0.1", "--resume"], "holds no sweep to resume"),
    ],
)
def test_a_bad_grid_is_one_line_and_exit_2_before_any_trial(tmp_path, capsys, args, message):
    out = tmp_path / "sweep"
    assert cli.main(["sweep", "iris-afd", *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_an_empty_yaml_grid_list_is_one_line_and_exit_2(tmp_path, capsys):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("grid:\n  device.variability: []\n")
    out = tmp_path / "sweep"
    assert cli.main(["sweep", "iris-afd", "--config", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "non-empty list" in err, err
    assert not out.exists()


def test_without_ray_the_sweep_names_the_extra_to_install(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None; from spinlearn import cli; sys.exit(cli.main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "sweep", "iris-tanh", "--grid", "train.lr=0.1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "pip install 'spinlearn[sweep]'" in done.stderr, done.stderr


def test_grid_values_are_read_as_set_reads_them():
    from spinlearn.sweep import parse_grid

    grid = parse_grid(["model.hidden=[16,16],[8]", "train.lr=2e-6,0.1", "model.activation=mtj,tanh"])
    assert grid == {
        "model.hidden": [[16, 16], [8]],
        "train.lr": [2e-6, 0.1],
        "model.activation": ["mtj", "tanh"],
    }


def _trial_dir(tmp_path, point, seed, **files):
    from spinlearn.sweep.trial import Trial

    out = tmp_path / point / f"seed{seed}"
    out.mkdir(parents=True)
    for name, content in files.items():
        (out / name.replace("_json", ".json")).write_text(json.dumps(content))
    return Trial(point, {"train.lr": float(point)}, seed, None, out)


def test_a_row_aggregates_its_seeds_and_counts_early_stopped_and_failed_trials(tmp_path):
    from spinlearn.experiments import get
    from spinlearn.sweep import table as sweep_table

    energy = {"train_j": 2.0, "calibration_j": 1.0, "train_mtj_read_j": 0.5}
    done = [
        _trial_dir(tmp_path, "0.1", s, summary_json={"per_seed": {"test_accuracy": [a]}, "energy": energy})
        for s, a in ((0, 0.8), (1, 0.9), (2, 1.0))
    ]
    early = _trial_dir(
        tmp_path, "0.2", 0, early_stopped_json={"last_epoch": {"seed": 0, "test_accuracy": 0.5}}
    )
    failed = _trial_dir(tmp_path, "0.2", 1, error_json={"error": "TrainingDiverged: at epoch 3"})
    rows = sweep_table.write(
        tmp_path, get("iris-afd"), {"train.lr": [0.1, 0.2]}, [*done, early, failed], None, 1
    )
    ok, bad = rows
    assert (ok["status"], ok["seeds"], ok["early_stopped"], ok["failed"]) == ("ok", 3, 0, 0)
    assert ok["test_accuracy_mean"] == pytest.approx(0.9) and ok["test_accuracy_std"] == pytest.approx(0.1)
    assert (ok["test_accuracy_min"], ok["test_accuracy_max"]) == (0.8, 1.0)
    assert ok["energy_train_j"] == 2.0 and "energy_train_mtj_read_j" not in ok
    assert (bad["status"], bad["seeds"], bad["early_stopped"], bad["failed"]) == ("failed", 0, 1, 1)
    assert bad["error"] == "TrainingDiverged: at epoch 3" and bad["test_accuracy_mean"] == 0.5
    assert [r["status"] for r in _rows(tmp_path)] == ["ok", "failed"]
    assert (tmp_path / "sweep_train.lr.png").exists() and "| 0.1 | ok | 3 | 0.9 ± 0.1 |" in (
        tmp_path / "sweep.md"
    ).read_text()
