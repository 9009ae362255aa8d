"""A user's own classification data: a CSV file or a NumPy ``.npz`` archive (``data.dataset=csv`` or
``npz`` with ``data.path=FILE``).

* CSV: a header row, then one sample per row; a column named ``label`` holds the class, every other
  column is a numeric feature. Comma-separated, UTF-8.
* NPZ: ``x_train``, ``y_train``, ``x_test``, ``y_test`` (used as they are), or one ``x``/``y`` pair
  split stratified by ``data.test_fraction`` with the run's seed. ``x`` arrays are numeric with one
  sample per row (images of shape ``(n, h, w)`` or ``(n, c, h, w)`` are flattened); read with
  ``allow_pickle=False``, so an archive holding Python objects is refused.

Labels may be integers or strings. The classes are the training labels' distinct values, sorted
(numerically for integers), and a class's index is its position in that order: labels ``0 .. K-1``
keep their values. A CSV is always split by ``data.test_fraction``. Every malformed file is one
:class:`~spinlearn.errors.DataError` naming the file and what is wrong, raised before training.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinlearn.config import OWN_DATA_FORMATS
from spinlearn.data import Splits, stratified_split
from spinlearn.errors import DataError, first_line
from spinlearn.io import write_text_atomic

FORMATS = OWN_DATA_FORMATS
LABEL = "label"
NPZ_SPLIT = ("x_train", "y_train", "x_test", "y_test")
NPZ_PAIR = ("x", "y")
#: Written into the run directory: what each output index of the network stands for.
CLASSES_FILE = "classes.json"


@dataclass(frozen=True)
class UserData:
    """Arrays of a user's file (validation part = test part) and the class of each output index."""

    splits: Splits
    classes: tuple[str, ...]
    path: str

    @property
    def features(self) -> int:
        return self.splits.x_train.shape[1]

    @property
    def image_side(self) -> int:
        """The side of a square single-channel image the feature row could be (0 if not square)."""
        side = math.isqrt(self.features)
        return side if side * side == self.features else 0

    def record(self, out_dir: Path) -> None:
        """Write ``classes.json``: the file read (path and SHA-256 of its bytes, so that a run says
        which version of the file it trained on), its width and the label behind each output index."""
        digest = hashlib.sha256(Path(self.path).read_bytes()).hexdigest()
        record = {
            "path": self.path,
            "sha256": digest,
            "features": self.features,
            "classes": list(self.classes),
        }
        text = json.dumps(record)
        write_text_atomic(Path(out_dir) / CLASSES_FILE, text + "\n")


def read(kind: str, path: str, test_fraction: float, seed: int) -> UserData:
    """The file ``path`` in format ``kind`` (csv or npz) as train/test arrays of class indices."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data.path {path}: {'not a file' if file.exists() else 'no such file'}")
    if kind == "csv":
        x, labels = _read_csv(file)
        parts = _split(file, x, labels, test_fraction, seed)
    else:
        parts = _read_npz(file, test_fraction, seed)
    x_tr, y_tr, x_te, y_te = parts
    if (y_tr.dtype.kind == "U") != (y_te.dtype.kind == "U"):
        raise DataError(f"{path}: y_train and y_test mix integer and string labels")
    classes = np.unique(y_tr)
    if len(classes) < 2:
        raise DataError(f"{path}: every training label is {_name(classes[0])!r}; at least two classes needed")
    unseen = np.setdiff1d(np.unique(y_te), classes)
    if len(unseen):
        raise DataError(f"{path}: test label {_name(unseen[0])!r} never occurs in the training labels")
    index = [np.searchsorted(classes, y).astype(np.int64) for y in (y_tr, y_te)]
    splits = Splits(x_tr, index[0], x_te, index[1], x_te, index[1])
    return UserData(splits, tuple(_name(c) for c in classes), str(path))


def _name(label) -> str:
    return str(label.item() if hasattr(label, "item") else label)


def _split(file: Path, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    values, counts = np.unique(y, return_counts=True)
    if len(values) >= 2 and counts.min() < 2:
        lonely = _name(values[counts.argmin()])
        raise DataError(f"{file}: class {lonely!r} has one sample; a stratified split needs two per class")
    x_tr, x_te, y_tr, y_te = stratified_split(x, y, test_fraction, seed)
    return x_tr, y_tr, x_te, y_te


# --- CSV ------------------------------------------------------------------------------------------


def _read_csv(file: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise DataError(f"{file} is not UTF-8 text (a CSV file expected)") from None
    except (OSError, csv.Error) as exc:
        raise DataError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    if not rows:
        raise DataError(f"{file} is empty (a header row with a '{LABEL}' column expected)")
    header = [name.strip() for name in rows[0]]
    if LABEL not in header:
        raise DataError(f"{file} has no '{LABEL}' column (header: {', '.join(header)})")
    if len(header) < 2:
        raise DataError(f"{file} has no feature columns besides '{LABEL}'")
    body = [(k + 2, row) for k, row in enumerate(rows[1:]) if any(cell.strip() for cell in row)]
    if not body:
        raise DataError(f"{file} has a header but no samples")
    for line, row in body:
        if len(row) != len(header):
            raise DataError(f"{file} line {line}: {len(row)} values, the header has {len(header)} columns")
    at = header.index(LABEL)
    labels = [row[at].strip() for _, row in body]
    for (line, _), label in zip(body, labels, strict=True):
        if not label:
            raise DataError(f"{file} line {line}: the label is missing")
    cells = np.array([row[:at] + row[at + 1 :] for _, row in body], dtype=str)
    names = header[:at] + header[at + 1 :]
    try:
        x = cells.astype(np.float64)
    except ValueError:
        x = None
    if x is None or not np.isfinite(x).all():
        raise _bad_cell(file, cells, names, [line for line, _ in body])
    return x.astype(np.float32), _labels(labels)


def _bad_cell(file: Path, cells: np.ndarray, names: list[str], lines: list[int]) -> DataError:
    """The first cell that is not a finite number, named by line and column (only on the error path)."""
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            try:
                ok = math.isfinite(float(cell))
            except ValueError:
                ok = False
            if not ok:
                what = f"{cell.strip()!r} is not a finite number" if cell.strip() else "the value is missing"
                return DataError(f"{file} line {lines[r]}, column '{names[c]}': {what}")
    return DataError(f"{file}: a feature value is not a finite number")


def _labels(labels: list[str]) -> np.ndarray:
    """Integer labels when every label is an integer, else the strings."""
    try:
        return np.array([int(label) for label in labels], dtype=np.int64)
    except ValueError:
        return np.array(labels, dtype=str)


# --- NPZ ------------------------------------------------------------------------------------------


def _read_npz(file: Path, test_fraction: float, seed: int):
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read {file} as an .npz archive: {first_line(exc)}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{file} holds a single array, not an .npz archive of {', '.join(NPZ_SPLIT)}")
    with archive:
        keys = set(archive.files)
        wanted = NPZ_SPLIT if set(NPZ_SPLIT) <= keys or not set(NPZ_PAIR) <= keys else NPZ_PAIR
        missing = [k for k in wanted if k not in keys]
        if missing:
            raise DataError(
                f"{file} lacks {', '.join(missing)} (has: {', '.join(sorted(keys)) or 'nothing'}); "
                f"expected {', '.join(NPZ_SPLIT)}, or {' and '.join(NPZ_PAIR)} to split"
            )
        arrays = {k: _array(file, archive, k) for k in wanted}
    xs = [_features(file, k, arrays[k]) for k in wanted if k.startswith("x")]
    ys = [_npz_labels(file, k, arrays[k], len(x)) for k, x in zip(wanted[1::2], xs, strict=True)]
    if len(xs) == 2 and xs[0].shape[1] != xs[1].shape[1]:
        raise DataError(f"{file}: x_train has {xs[0].shape[1]} features per sample, x_test {xs[1].shape[1]}")
    if wanted == NPZ_PAIR:
        return _split(file, xs[0], ys[0], test_fraction, seed)
    return xs[0], ys[0], xs[1], ys[1]


def _array(file: Path, archive, key: str) -> np.ndarray:
    try:
        return archive[key]
    except (ValueError, OSError, EOFError) as exc:  # object arrays need pickle, which is refused
        raise DataError(f"{file}: cannot read {key}: {first_line(exc)}") from None


def _features(file: Path, key: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "biuf" or x.ndim < 2 or len(x) == 0:
        raise DataError(f"{file}: {key} is {x.dtype} {x.shape}; numbers, one sample per row, expected")
    x = x.reshape(len(x), -1).astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(x).all(1))
    if len(bad):
        raise DataError(f"{file}: {key} holds NaN or Inf (sample {bad[0]})")
    return x


def _npz_labels(file: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{file}: {key} has shape {y.shape}; one label per sample ({n}) expected")
    if y.dtype.kind == "f":
        if np.isnan(y).any():
            first = np.flatnonzero(np.isnan(y))[0]
            raise DataError(f"{file}: {key} has a missing label (NaN at sample {first})")
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise DataError(f"{file}: {key} holds fractional labels; integers or strings expected")
        return y.astype(np.int64)
    if y.dtype.kind in "biu":
        return y.astype(np.int64)
    if y.dtype.kind == "S":
        y = np.char.decode(y, "utf-8")
    if y.dtype.kind == "U":
        if (np.char.strip(y) == "").any():
            raise DataError(f"{file}: {key} has a missing label (an empty string)")
        return y
    raise DataError(f"{file}: {key} is {y.dtype}; integer or string labels expected")
