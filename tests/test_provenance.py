"""A run records where its numbers came from, logs to trackers, refuses to overwrite, and runs again
from its record (issue 26)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from spinlearn import cli

ROOT = Path(__file__).resolve().parents[1]
TRACKERS = ["--log-to", "tensorboard,mlflow"]
ARGS = ["iris-afd", "--seeds", "2", "--set", "train.epochs=2", "--plot-format", "png,svg"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One two-seed run, not quiet (its stderr is not a terminal), logging to both trackers."""
    base = tmp_path_factory.mktemp("provenance")
    out, store = base / "run", base / "mlflow.db"
    # MLflow's store in the test's directory; its artifacts go to ./mlruns, so the run starts there
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "spinlearn",
        "run",
        *ARGS,
        "--out",
        str(out),
        "--log-to",
        "tensorboard,mlflow",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=base, env=env)
    assert done.returncode == 0, done.stderr
    return out, store, done


def test_run_yaml_records_the_run(run):
    out, _, _ = run
    record = yaml.safe_load((out / "run.yaml").read_text())
    assert record["argv"] == ["spinlearn", "run", *ARGS, "--out", str(out), *TRACKERS]
    assert (record["experiment"], record["seed"], record["seeds"]) == ("iris-afd", 0, 2)
    assert (record["backend"], record["device"], record["deterministic"]) == ("simulated", "cpu", False)
    assert record["config"]["train"]["epochs"] == 2
    assert record["versions"]["spinlearn"] and record["versions"]["torch"].startswith("2.")
    assert record["versions"]["numpy"] and "numba" in record["versions"]
    assert len(record["git"]["commit"]) == 40  # the tests run from a checkout
    assert record["machine"]["cpu"] and record["machine"]["torch_threads"] >= 1
    assert record["start"] <= record["end"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"] == {k: v for k, v in record.items() if k != "config"}


def test_progress_is_one_line_per_epoch_off_a_terminal(run):
    lines = [line for line in run[2].stderr.splitlines() if line.startswith("iris-afd: ")]
    assert len(lines) == 4, run[2].stderr  # 2 seeds x 2 epochs
    assert lines[0].startswith("iris-afd: 1/4 elapsed ") and "seed 0 epoch 1 train_loss=" in lines[0]
    assert "eta 0 s seed 1 epoch 2" in lines[-1] and "test_accuracy=" in lines[-1]


def test_each_plot_in_each_format_with_its_data(run):
    out = run[0]
    for name in ("learning_curves", "device_curves", "energy"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert b"<svg" in (out / f"{name}.svg").read_bytes()[:1000]
    rows = list(csv.DictReader((out / "learning_curves.csv").open()))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for y_label, key in (("training loss", "train_loss"), ("test accuracy", "test_accuracy")):
        drawn = [float(r["y"]) for r in rows if r["y_label"] == y_label and r["series"] == "line0"]
        mean = [np.mean([r[key] for r in records if r["epoch"] == e]) for e in (1, 2)]
        assert np.allclose(drawn, mean)
        band = [(float(r["low"]), float(r["high"])) for r in rows if r["y_label"] == y_label and r["low"]]
        std = [np.std([r[key] for r in records if r["epoch"] == e]) for e in (1, 2)]
        assert np.allclose(band, [(m - s, m + s) for m, s in zip(mean, std, strict=True)])


def test_tensorboard_events_read_back(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = run[0]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for seed in (0, 1):
        logged = [(e.step, e.value) for e in events.Scalars(f"train_loss/seed{seed}")]
        expected = [(r["epoch"], r["train_loss"]) for r in records if r["seed"] == seed]
        assert [s for s, _ in logged] == [s for s, _ in expected]
        assert np.allclose([v for _, v in logged], [v for _, v in expected], rtol=1e-6)
    summary = json.loads((out / "summary.json").read_text())["metrics"]
    (final,) = events.Scalars("summary/test_accuracy_mean")
    assert final.value == pytest.approx(summary["test_accuracy_mean"], rel=1e-6)
    assert set(events.Tags()["images"]) == {"plots/learning_curves", "plots/device_curves", "plots/energy"}


def test_mlflow_run_reads_back(run):
    from mlflow.tracking import MlflowClient

    out, store, _ = run
    client = MlflowClient(f"sqlite:///{store}")
    (logged,) = client.search_runs([client.get_experiment_by_name("iris-afd").experiment_id])
    assert logged.info.status == "FINISHED" and logged.info.run_name == out.name
    assert logged.data.params["train.epochs"] == "2" and logged.data.params["seeds"] == "2"
    summary = json.loads((out / "summary.json").read_text())["metrics"]
    assert logged.data.metrics["summary/test_accuracy_mean"] == summary["test_accuracy_mean"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    history = client.get_metric_history(logged.info.run_id, "train_loss/seed1")
    assert [(m.step, m.value) for m in history] == [
        (r["epoch"], r["train_loss"]) for r in records if r["seed"] == 1
    ]
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {
        "run.yaml",
        "summary.json",
        "config.yaml",
        "learning_curves.svg",
        "learning_curves.csv",
    } <= artifacts


def test_a_finished_run_is_not_overwritten_and_from_runs_it_again(run, capsys):
    out = run[0]
    before = json.loads((out / "summary.json").read_text())
    assert cli.main(["run", "iris-tanh", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"spinlearn: error: {out} holds a finished run (summary.json): give --overwrite to replace it, "
        "--resume to keep it, or another --out\n"
    )
    assert json.loads((out / "summary.json").read_text()) == before
    # the same run again from its record, over it: same metrics, the earlier run's SVGs gone
    assert cli.main(["run", "--from", str(out), "--out", str(out), "--overwrite", "--quiet"]) == 0
    after = json.loads((out / "summary.json").read_text())
    assert after["metrics"] == before["metrics"] and after["seeds"] == [0, 1]
    assert not list(out.glob("*.svg")) and (out / "learning_curves.png").exists()
    assert not (out / "tensorboard").exists()  # the earlier run's events went with it
