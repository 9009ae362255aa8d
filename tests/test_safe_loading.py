"""Every data file a user points at is read without executing code: CIFAR-10 batches and
``mnist.pkl.gz`` in ``data.dir`` (and the packaged MNIST) through a restricted unpickler, YAML configs
through ``yaml.safe_load``. Crafted files are refused with one line on stderr and exit code 2, and
their payload never runs."""

import gzip
import io
import os
import pathlib
import pickle
import shlex
import subprocess
import sys

import numpy as np
import pytest
from data_helpers import tiny_cifar

from spinlearn import _unpickle, data
from spinlearn.errors import DataError

SYSTEM = f"{os.system.__module__}.system"  # os.system pickles as posix.system (nt.system on Windows)


class System:
    """Unpickles by running a shell command, as a crafted data file does."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class Touch:
    """Unpickles by creating a file, through a method rather than a module function."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


PAYLOADS = {
    "os.system": (lambda marker: System(f"touch {shlex.quote(str(marker))}"), SYSTEM),
    "Path.touch": (lambda marker: Touch(marker), "pathlib.Path.touch"),
}


def spinlearn_in(cwd, *args, timeout=600):
    """``spinlearn ARGS`` in a subprocess started in ``cwd`` (so relative paths land there)."""
    return subprocess.run(
        [sys.executable, "-m", "spinlearn", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def one_line_error(done, *fragments):
    """The run failed as user errors do: exit code 2, exactly one line on stderr holding ``fragments``."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("spinlearn: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def mnist_arrays(n=(600, 100, 100), seed=0):
    """(train, valid, test) pairs in the classic layout: float32 images in [0, 1) of shape (n, 784)."""
    rng = np.random.default_rng(seed)
    parts = []
    for size in n:
        labels = np.arange(size, dtype=np.int64) % 10
        images = rng.integers(0, 40, (size, 28, 28))
        for k in range(10):  # a bright bar whose position encodes the digit
            images[labels == k, 2 + 2 * k : 4 + 2 * k, :] = 255
        parts.append(((images.reshape(size, 784) / 256).astype(np.float32), labels))
    return tuple(parts)


def write_mnist_pickle(directory, content, protocol=pickle.DEFAULT_PROTOCOL):
    path = pathlib.Path(directory) / "mnist.pkl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=1) as fh:
        pickle.dump(content, fh, protocol=protocol)
    return path


def live(payload_file, marker, opener=open, **kwargs):
    """A plain ``pickle.load`` of ``payload_file`` runs its payload (the file is a real attack); the
    marker it leaves is removed again."""
    with opener(payload_file, "rb") as fh:
        pickle.load(fh, **kwargs)
    assert marker.exists()
    marker.unlink()


# --- CIFAR-10 batches in data.dir -------------------------------------------------------------------

CIFAR_RUNS = {
    "mnist-dw-sgld": ["--set", "data.dataset=cifar10", "--set", "model.hidden=[16]"],
    "cifar10-dw-resnet18": ["--set", "model.width=0.0625", "--set", "train.batch_size=20"],
}


@pytest.mark.parametrize(
    "experiment, payload",
    [("mnist-dw-sgld", "os.system"), ("mnist-dw-sgld", "Path.touch"), ("cifar10-dw-resnet18", "os.system")],
)
def test_a_crafted_cifar_batch_is_refused_by_name_and_its_payload_never_runs(tmp_path, experiment, payload):
    directory = tiny_cifar(tmp_path / "cifar")
    marker = tmp_path / "MARKER"
    make, refused = PAYLOADS[payload]
    images = np.zeros((10, 3072), dtype=np.uint8)
    with open(directory / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": images, b"labels": make(marker)}, fh)
    live(directory / "data_batch_1", marker, encoding="bytes")

    done = spinlearn_in(
        tmp_path,
        *("run", experiment, "--set", f"data.dir={directory}", *CIFAR_RUNS[experiment]),
        *("--set", "train.epochs=1", "--set", "data.train_subset=64", "--set", "posterior.samples=2"),
        *("--out", str(tmp_path / "out"), "--quiet"),
    )
    line = one_line_error(done, "refusing to load", str(directory / "data_batch_1"), refused)
    assert "CIFAR-10 batch" in line and "without executing code" in line
    assert not marker.exists()


# --- mnist.pkl.gz in data.dir ---------------------------------------------------------------------

MNIST_RUN = ["run", "mnist-afd", "--set", "train.epochs=1", "--set", "data.train_subset=100", "--quiet"]
SMALL = ["--set", "model.hidden=[32]", "--set", "baseline.tanh=false"]  # quick where training happens


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_crafted_mnist_pickle_in_data_dir_is_refused_by_name_and_its_payload_never_runs(tmp_path, payload):
    marker = tmp_path / "MARKER"
    make, refused = PAYLOADS[payload]
    train, valid, _ = mnist_arrays()
    path = write_mnist_pickle(tmp_path / "mnist", (train, valid, make(marker)))
    live(path, marker, opener=gzip.open, encoding="latin1")

    done = spinlearn_in(
        tmp_path, *MNIST_RUN, "--set", f"data.dir={path.parent}", "--out", str(tmp_path / "out")
    )
    line = one_line_error(done, "refusing to load", str(path), refused)
    assert "MNIST pickle" in line
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_generated_mnist_pickle_in_data_dir_loads_with_its_splits(tmp_path, protocol):
    parts = mnist_arrays()
    write_mnist_pickle(tmp_path, parts, protocol=protocol)
    splits = data.mnist(str(tmp_path))  # lru_cached per directory: tmp_path is new for every test
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (600, 100, 100)
    assert splits.x_train.dtype == np.float32 and splits.y_train.dtype == np.int64
    for got, (x, y) in zip(
        [(splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)],
        parts,
        strict=True,
    ):
        np.testing.assert_array_equal(got[0], x)
        np.testing.assert_array_equal(got[1], y)


def test_a_generated_mnist_pickle_trains_through_the_cli(tmp_path):
    directory = write_mnist_pickle(tmp_path / "mnist", mnist_arrays()).parent
    done = spinlearn_in(
        tmp_path, *MNIST_RUN, *SMALL, "--set", f"data.dir={directory}", "--out", str(tmp_path / "o")
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "summary.json").is_file()


def _truncate_gzip(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _truncate_pickle(path):
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))


@pytest.mark.parametrize(
    "damage, message",
    [
        (_truncate_gzip, "truncated or damaged"),
        (_truncate_pickle, "pickle data was truncated"),
        (lambda path: path.write_bytes(b"no pickle at all"), "invalid load key"),
        (lambda path: path.write_bytes(gzip.compress(pickle.dumps({"x": 1}))), "not an MNIST pickle"),
    ],
    ids=["truncated-gzip", "truncated-pickle", "not-a-pickle", "not-a-tuple"],
)
def test_a_truncated_or_damaged_mnist_pickle_is_one_line_and_exit_2(tmp_path, damage, message):
    path = write_mnist_pickle(tmp_path / "mnist", mnist_arrays())
    damage(path)
    done = spinlearn_in(
        tmp_path, *MNIST_RUN, "--set", f"data.dir={path.parent}", "--out", str(tmp_path / "o")
    )
    one_line_error(done, str(path), message)


def _replace(part, index, value):
    def change(parts):
        parts = [list(p) for p in parts]
        parts[part][index] = value(parts[part][index])
        return tuple(tuple(p) for p in parts)

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (_replace(0, 0, lambda x: x.reshape(-1, 28 * 14)), r"train images have shape \(1200, 392\)"),
        (_replace(1, 0, lambda x: x * 3), "valid pixel values must lie in"),
        (_replace(1, 0, lambda x: x.astype(np.int32)), "valid images are int32"),
        (_replace(2, 1, lambda y: y + 5), "test labels hold 5..14"),
        (_replace(2, 1, lambda y: y[:-1]), "test labels are int64 \\(99,\\), expected 100 integers"),
        (_replace(2, 1, lambda y: y.astype(np.float64)), "test labels are float64"),
        (_replace(0, 1, lambda y: list(y)), "train images and labels must be NumPy arrays"),
        (lambda parts: parts[:2], "expected a \\(train, valid, test\\) tuple"),
    ],
    ids=["shape", "range", "int-images", "label-range", "label-count", "float-labels", "list", "two-parts"],
)
def test_mnist_pickles_with_wrong_shapes_or_labels_are_one_line_data_errors(tmp_path, change, message):
    path = write_mnist_pickle(tmp_path, change(mnist_arrays()))
    with pytest.raises(DataError, match=message) as caught:
        data.mnist_from_pickle(path)
    assert "\n" not in str(caught.value)


def test_the_idx_files_take_precedence_over_a_pickle_only_when_all_four_are_there(tmp_path):
    write_mnist_pickle(tmp_path, mnist_arrays())
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"not read")
    assert len(data.mnist_from_dir(tmp_path).x_train) == 600
    for stem in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / stem).write_bytes(b"not read either")
    with pytest.raises(DataError, match="bad magic number"):
        data.mnist_from_dir(tmp_path)


# --- the packaged MNIST ---------------------------------------------------------------------------


def test_the_packaged_mnist_still_loads_through_the_restricted_unpickler(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("plain pickle.load used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    asked = set()
    find_class = _unpickle.RestrictedUnpickler.find_class

    def recorded(self, module, name):
        asked.add((module, name))
        return find_class(self, module, name)

    monkeypatch.setattr(_unpickle.RestrictedUnpickler, "find_class", recorded)
    splits = data.mnist_packaged()
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (50_000, 10_000, 10_000)
    assert splits.x_train.shape[1] == 784 and splits.x_train.dtype == np.float32
    assert 0 <= splits.x_train.min() and splits.x_train.max() < 1
    assert sorted(np.unique(splits.y_test)) == list(range(10))
    assert asked == {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}


# --- the unpickler itself -------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_arrays_scalars_and_builtin_containers_load_at_every_protocol(protocol):
    content = {
        b"data": np.arange(12, dtype=np.uint8).reshape(3, 4),
        b"labels": [np.int64(3), 4, 5.0],
        "strided": np.arange(16.0).reshape(4, 4)[:, ::2],
        "record": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
        "objects": np.array([1, "a"], dtype=object),
        "misc": ({1, 2}, frozenset({3}), bytearray(b"xy"), 1j, b"raw", None, True),
    }
    loaded = _unpickle.load_pickle(io.BytesIO(pickle.dumps(content, protocol=protocol)), what="test file")
    assert loaded.keys() == content.keys()
    for key in (b"data", "strided", "record", "objects"):
        np.testing.assert_array_equal(loaded[key], content[key])
    assert loaded[b"labels"] == [3, 4, 5.0] and loaded["misc"] == content["misc"]


class Reduce:
    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


@pytest.mark.parametrize(
    "content, message",
    [
        (Reduce(eval, "1 + 1"), "it asks for builtins.eval"),
        (Reduce(getattr, np.ndarray, "tofile"), "it asks for builtins.getattr"),
        (Reduce(np.load, "x.npy"), "it asks for numpy.load"),
        (Reduce(subprocess.Popen, ["true"]), "it asks for subprocess.Popen"),
        (Reduce(pickle.loads, b"x"), "it asks for _pickle.loads"),
        ({b"labels": [1, Reduce(os.system, "true")]}, f"it asks for {SYSTEM}"),
    ],
    ids=["eval", "getattr", "numpy.load", "Popen", "pickle.loads", "nested-system"],
)
def test_every_global_outside_the_allowed_ones_is_refused_before_it_is_called(tmp_path, content, message):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(DataError, match=f"refusing to load {path}: {message}, which no test file holds"):
        _unpickle.load_pickle(path, what="test file")


def test_bytes_in_old_protocols_decode_only_through_latin1(tmp_path):
    import codecs

    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(Reduce(codecs.encode, "abc", "rot13"), protocol=2))
    with pytest.raises(DataError, match="codec rot13, not latin-1"):
        _unpickle.load_pickle(path, what="test file")


# --- YAML configs ---------------------------------------------------------------------------------


def test_a_yaml_config_asking_to_run_a_command_is_refused_and_never_runs(tmp_path):
    config = tmp_path / "evil.yaml"
    config.write_text('train:\n  epochs: !!python/object/apply:os.system ["touch MARKER"]\n')
    done = spinlearn_in(tmp_path, "run", "iris-afd", "--config", str(config), "--out", str(tmp_path / "o"))
    one_line_error(done, str(config), "python/object/apply:os.system")
    assert not (tmp_path / "MARKER").exists()


# --- a teacher checkpoint (torch.load with weights_only) --------------------------------------------


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_a_crafted_teacher_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, payload):
    import torch

    marker = tmp_path / "MARKER"
    make, _ = PAYLOADS[payload]
    teacher = tmp_path / "teacher.pt"
    torch.save({"0.weight": torch.zeros(1), "evil": make(marker)}, teacher)
    done = spinlearn_in(
        tmp_path,
        *("run", "mnist-kd", "--set", "data.dataset=digits", "--set", f"teacher.path={teacher}"),
        *("--set", "train.epochs=1", "--out", str(tmp_path / "out"), "--quiet"),
    )
    one_line_error(done, f"refusing to load teacher.path {teacher}")
    assert not marker.exists()
