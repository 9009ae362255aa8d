"""A user's own CSV and NPZ files: the classifier experiments train on them with the widths of the
data, and every malformed file is one line on stderr and exit code 2, before any training."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
import torch
from cli_helpers import run_summary

from spinlearn import cli, config
from spinlearn.experiments import get, iris, mnist
from spinlearn.runner import run_experiment

NAMES = ("emu", "cat", "dog")  # not in sorted order: the classes are sorted


def clusters(n: int = 150, features: int = 6, classes: int = 3, seed: int = 0):
    """``n`` samples of ``classes`` well separated Gaussian clusters."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(0, 3, (classes, features))
    return centres[y] + rng.normal(0, 1, (n, features)), y


def write_csv(path, x, labels, header=None):
    header = header or [*(f"f{k}" for k in range(x.shape[1])), "label"]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row, label in zip(x, labels, strict=True):
            writer.writerow([f"{v:.5f}" for v in row] + [label])
    return path


def _cli(capsys, *args):
    """``spinlearn ARGS`` in this process: its exit code and stderr."""
    code = cli.main(list(args))
    err = capsys.readouterr().err
    return code, err


def test_mnist_afd_trains_on_a_csv_file_with_string_labels(tmp_path):
    x, y = clusters()
    path = write_csv(tmp_path / "samples.csv", x, [NAMES[k] for k in y])
    out = tmp_path / "run"
    summary = run_summary(
        out,
        *("mnist-afd", "--set", "data.dataset=csv", "--set", f"data.path={path}"),
        *("--set", "model.hidden=[8]", "--set", "train.epochs=3", "--set", "train.batch_size=16"),
        *("--set", "train.lr=0.03", "--set", "baseline.tanh=false"),
    )
    assert summary["metrics"]["test_accuracy_mean"] >= 0.9
    recorded = json.loads((out / "classes.json").read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert recorded == {"path": str(path), "sha256": digest, "features": 6, "classes": ["cat", "dog", "emu"]}


def test_iris_afd_trains_on_an_npz_with_its_own_test_part(tmp_path, capsys):
    x, y = clusters(n=200, features=5, classes=4, seed=1)
    path = tmp_path / "samples.npz"
    np.savez(path, x_train=x[:160], y_train=y[:160], x_test=x[160:], y_test=y[160:])
    out = tmp_path / "run"
    code, _ = _cli(
        capsys,
        *("run", "iris-afd", "--set", "data.dataset=npz", "--set", f"data.path={path}"),
        *("--set", "train.epochs=4", "--out", str(out), "--quiet"),
    )
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["metrics"]["test_accuracy_mean"] >= 0.9
    assert json.loads((out / "classes.json").read_text())["classes"] == ["0", "1", "2", "3"]


def test_the_network_takes_its_widths_from_the_data(tmp_path):
    x, y = clusters(n=100, features=7, classes=3)
    path = write_csv(tmp_path / "samples.csv", x, [(3, 7, 9)[k] for k in y])
    cpu = torch.device("cpu")
    train, test, classes = iris.load(iris.IrisData(dataset="csv", path=str(path)), 0, cpu)
    assert (train[0].shape[1], classes) == (7, 3)
    assert set(train[1].tolist()) == {0, 1, 2}  # labels 3, 7, 9 -> outputs 0, 1, 2, in order
    assert (len(train[0]), len(test[0])) == (80, 20)  # data.test_fraction 0.2, stratified
    d = mnist.load(mnist.MNISTData(dataset="csv", path=str(path)), 0, cpu)
    assert (d.train[0].shape[1], d.classes, d.side) == (7, 3, 0)
    digits, _, classes = iris.load(iris.IrisData(dataset="digits"), 0, cpu)  # once refused
    assert (digits[0].shape[1], classes) == (64, 10)


def test_one_file_split_by_the_run_seed_stratified(tmp_path):
    x, y = clusters(n=90, features=4)
    path = tmp_path / "pair.npz"
    np.savez(path, x=x, y=y)
    cfg = iris.IrisData(dataset="npz", path=str(path), test_fraction=1 / 3)
    cpu = torch.device("cpu")
    (xa, _), (_, ya), _ = iris.load(cfg, 0, cpu)
    (xb, _), _, _ = iris.load(cfg, 0, cpu)
    (xc, _), _, _ = iris.load(cfg, 1, cpu)
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)
    assert torch.bincount(ya).tolist() == [10, 10, 10]


def _bad_files(d):
    """Name -> (file written into ``d``, the experiment's --set arguments, what the message says)."""
    x, y = clusters(n=60, features=4)
    labels = [NAMES[k] for k in y]
    ok = write_csv(d / "ok.csv", x, labels)
    rows = ok.read_text().splitlines()
    header = ",".join(f"f{k}" for k in range(4))

    def text(name, lines):
        (d / name).write_text("\n".join(lines) + "\n")
        return d / name

    def npz(name, **arrays):
        np.savez(d / name, **arrays)
        return d / name

    return {
        "missing file": (d / "absent.csv", "no such file"),
        "no label column": (text("nolabel.csv", [header + ",kind", *rows[1:]]), "no 'label' column"),
        "missing label": (
            text("unlabelled.csv", [*rows[:5], rows[5].rsplit(",", 1)[0] + ",", *rows[6:]]),
            "line 6: the label is missing",
        ),
        "NaN feature": (
            text("nan.csv", [*rows[:3], "nan," + rows[3].split(",", 1)[1], *rows[4:]]),
            "line 4, column 'f0': 'nan' is not a finite number",
        ),
        "empty feature": (
            text("hole.csv", [*rows[:2], "," + rows[2].split(",", 1)[1], *rows[3:]]),
            "line 3, column 'f0': the value is missing",
        ),
        "wrong columns": (
            text("short.csv", [*rows[:7], rows[7].split(",", 1)[1], *rows[8:]]),
            "line 8: 4 values, the header has 5 columns",
        ),
        "one class": (write_csv(d / "one.csv", x, ["cat"] * len(x)), "every training label is 'cat'"),
        "missing npz keys": (npz("keys.npz", x_train=x, y_train=y), "lacks x_test, y_test"),
        "pickled objects": (
            npz("objects.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4)),
            "cannot read x",
        ),
        "widths differ": (
            npz("widths.npz", x_train=x, y_train=y, x_test=x[:, :3], y_test=y),
            "x_train has 4 features per sample, x_test 3",
        ),
        "NaN label": (
            npz("nanlabel.npz", x=x, y=np.where(np.arange(60) == 9, np.nan, y)),
            "missing label (NaN at sample 9)",
        ),
        "unseen test label": (
            npz("unseen.npz", x_train=x, y_train=y, x_test=x, y_test=y + 1),
            "test label '3' never occurs",
        ),
        "not an archive": (text("garbage.npz", ["not numpy"]), "cannot read"),
    }


BAD = [
    "missing file",
    "no label column",
    "missing label",
    "NaN feature",
    "empty feature",
    "wrong columns",
    "one class",
    "missing npz keys",
    "pickled objects",
    "widths differ",
    "NaN label",
    "unseen test label",
    "not an archive",
]


@pytest.mark.parametrize("case", BAD)
def test_a_bad_file_is_one_line_and_exit_code_2_before_training(tmp_path, capsys, case):
    path, message = _bad_files(tmp_path)[case]
    kind = "npz" if path.suffix == ".npz" else "csv"
    out = tmp_path / "run"
    experiment = "iris-afd" if kind == "npz" else "mnist-afd"
    code, err = _cli(
        capsys,
        *("run", experiment, "--set", f"data.dataset={kind}", "--set", f"data.path={path}"),
        *("--set", "model.hidden=[4]", "--set", "train.epochs=1", "--out", str(out), "--quiet"),
    )
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("spinlearn: error: "), err
    assert message in err and (case == "missing file" or str(path) in err), err
    assert not (out / "metrics.jsonl").exists()  # no epoch ran


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mnist-afd", "--set", "data.dataset=csv"], "data.dataset = 'csv' needs data.path"),
        (["mnist-afd", "--set", "data.path=x.csv"], "is read only with data.dataset csv or npz"),
        (["mnist-kd", "--set", "data.dataset=csv", "--set", "data.path={ok}"], "needs square images"),
        (
            [
                "mnist-dw-sgld",
                "--set",
                "data.dataset=csv",
                "--set",
                "data.path={ok}",
                "--set",
                "model.arch=resnet18",
            ],
            "resnet18 needs square images",
        ),
    ],
)
def test_a_width_or_setting_the_network_cannot_take_is_one_line(tmp_path, capsys, args, message):
    x, y = clusters(n=60, features=6)
    ok = write_csv(tmp_path / "ok.csv", x, [NAMES[k] for k in y])
    out = tmp_path / "run"
    code, err = _cli(capsys, "run", *(a.format(ok=ok) for a in args), "--out", str(out), "--quiet")
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert not (out / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        (
            "digits-danp",
            {"model.hidden": [16], "compare.np": False, "compare.gaussian": False, "compare.bp": False},
        ),
        (
            "mnist-dw-sgld",
            {
                "model.hidden": [16],
                "train.batch_size": 16,
                "data.eval_subset": 0,
                "compare.float_sgld": False,
            },
        ),
    ],
)
def test_danp_and_domain_wall_experiments_train_on_a_users_file(tmp_path, name, overrides):
    x, y = clusters()
    path = tmp_path / "samples.npz"
    np.savez(path, x=x, y=np.array(NAMES)[y])  # string labels in an archive
    experiment = get(name)
    settings = {"data.dataset": "npz", "data.path": str(path), "train.epochs": 2, **overrides}
    cfg = config.build(experiment.config_cls, experiment.default_config(), None, settings)
    summary = run_experiment(experiment, cfg, tmp_path / "run", quiet=True)
    assert summary["metrics"]["test_accuracy_mean"] >= 0.9
    assert json.loads((tmp_path / "run" / "classes.json").read_text())["classes"] == sorted(NAMES)
