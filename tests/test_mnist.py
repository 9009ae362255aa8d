"""MNIST data (packaged and IDX), the MNIST experiments on small data, knowledge distillation."""

import gzip
import json
import struct

import numpy as np
import pytest
import torch
from cli_helpers import spinlearn as run_cli

from spinlearn import data
from spinlearn.errors import DataError
from spinlearn.experiments.mnist import kd_loss


def write_idx(path, array, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 10
    images = rng.integers(0, 40, (120, 28, 28))
    for k in range(10):  # a bright bar whose position encodes the digit: learnable
        images[labels == k, 2 + 2 * k : 4 + 2 * k, :] = 255
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, gz=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:30])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:30])
    return tmp_path


def test_idx_files_load_and_split_like_the_packaged_file(idx_dir):
    splits = data.mnist_from_idx(idx_dir)
    assert splits.x_train.shape == (100, 784) and splits.x_val.shape == (20, 784)
    assert splits.x_test.shape == (30, 784)
    assert splits.x_train.dtype == np.float32 and 0 <= splits.x_train.min() and splits.x_train.max() < 1
    assert list(splits.y_train[:12]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_packaged_mnist_has_the_standard_splits():
    splits = data.mnist()
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (50_000, 10_000, 10_000)
    assert splits.x_train.shape[1] == 784
    assert sorted(np.unique(splits.y_test)) == list(range(10))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "t10k-labels-idx1-ubyte").unlink(), "has no t10k-labels-idx1-ubyte"),
        (lambda d: (d / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x09\x03junk"), "bad magic"),
        (
            lambda d: (d / "t10k-images-idx3-ubyte").write_bytes(
                struct.pack(">BBBB3I", 0, 0, 8, 3, 30, 28, 28) + b"\x00" * 100
            ),
            "holds 100 bytes",
        ),
        (lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip"), "cannot read"),
    ],
)
def test_damaged_idx_files_raise_data_errors(idx_dir, damage, message):
    damage(idx_dir)
    with pytest.raises(DataError, match=message):
        data.mnist_from_idx(idx_dir)


def test_kd_loss_limits():
    logits = torch.randn(8, 10, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(8)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.isclose(kd_loss(4.0, 0.0)(logits, labels, logits + 5.0), ce)
    assert kd_loss(4.0, 1.0)(logits, labels, logits).abs() < 1e-6  # same logits: no soft loss
    assert kd_loss(4.0, 1.0)(logits, labels, -logits) > 0.1


def spinlearn(*args):
    return run_cli(*args, "--quiet")


SMALL = ["--set", "train.epochs=2", "--set", "model.hidden=[16, 16]"]


def test_mnist_afd_trains_from_idx_files_with_its_tanh_twin(tmp_path, idx_dir):
    fast = ["--set", "train.batch_size=10", "--set", "train.epochs=5", "--set", "model.hidden=[16, 16]"]
    out = spinlearn("run", "mnist-afd", "--set", f"data.dir={idx_dir}", *fast, "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    metrics = summary["metrics"]
    for key in ("test_accuracy_mean", "test_accuracy_std", "val_accuracy_mean", "tanh_test_accuracy_mean"):
        assert 0 <= metrics[key] <= 1
    assert metrics["test_accuracy_mean"] > 0.3  # the bar position is easy to learn
    variants = {json.loads(line)["variant"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()}
    assert variants == {"mtj", "tanh"}
    for png in ("learning_curves.png", "confusion.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_mnist_kd_on_digits_saves_and_reuses_its_teacher(tmp_path):
    args = [
        "--set",
        "data.dataset=digits",
        "--set",
        "teacher.epochs=2",
        "--set",
        "teacher.channels=4",
        *SMALL,
    ]
    first = spinlearn("run", "mnist-kd", *args, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    metrics = json.loads((tmp_path / "a" / "summary.json").read_text())["metrics"]
    for key in ("test_accuracy_mean", "student_no_kd_accuracy_mean", "teacher_accuracy_mean"):
        assert 0 <= metrics[key] <= 1
    teacher = tmp_path / "a" / "teacher_seed0.pt"
    again = spinlearn(
        "run", "mnist-kd", *args, "--set", f"teacher.path={teacher}", "--out", str(tmp_path / "b")
    )
    assert again.returncode == 0, again.stderr
    reused = json.loads((tmp_path / "b" / "summary.json").read_text())["metrics"]
    assert reused["teacher_accuracy_mean"] == metrics["teacher_accuracy_mean"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["mnist-afd", "--set", "data.dir=/nonexistent"], "data.dir /nonexistent is not a directory"),
        (["mnist-afd", "--set", "data.dataset=cifar"], "must be one of mnist, digits"),
        (
            ["mnist-kd", "--set", "teacher.path=/nonexistent.pt", "--set", "data.dataset=digits"],
            "cannot load teacher.path /nonexistent.pt",
        ),
    ],
)
def test_bad_mnist_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    out = spinlearn("run", *args, "--out", str(tmp_path))
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr


def test_corrupt_idx_through_the_cli_is_exit_code_2(tmp_path, idx_dir):
    (idx_dir / "t10k-images-idx3-ubyte").write_bytes(b"garbage!")
    out = spinlearn("run", "mnist-afd", "--set", f"data.dir={idx_dir}", "--out", str(tmp_path))
    assert out.returncode == 2
    assert "bad magic" in out.stderr and "Traceback" not in out.stderr
