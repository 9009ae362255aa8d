"""Reading pickled data files without executing code.

``pickle.load`` runs whatever callable a file names (a crafted CIFAR-10 batch whose ``__reduce__``
returns ``(os.system, ("...",))`` runs that command). :func:`load_pickle` reads the same files with an
unpickler whose ``find_class`` admits only what pickled NumPy arrays and builtin containers need:

* ``numpy.ndarray``, ``numpy.dtype`` and the array/scalar rebuilders ``_reconstruct``, ``scalar``
  (``numpy.core.multiarray`` in files written by NumPy 1, ``numpy._core.multiarray`` by NumPy 2) and
  ``_frombuffer`` (``numpy[._]core.numeric``, protocol 5);
* ``set``, ``frozenset``, ``bytearray`` and ``complex`` (``builtins``, or ``__builtin__`` in protocols
  0-2), and ``_codecs.encode`` restricted to latin-1 (how protocols 0-2 spell ``bytes``).

Every other global is refused with a one-line :class:`~spinlearn.errors.DataError` naming the file and
the global, before anything is called; damaged files (truncated, not a pickle, bad gzip) give one-line
DataErrors too. Dicts, lists, tuples, strings, bytes and numbers need no global. Gzipped files
(``mnist.pkl.gz``) are recognised by their magic number and decompressed on the fly.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import IO, Any

import numpy as np

from spinlearn.errors import DataError

try:  # NumPy 2 (and the forward-compatibility shim of NumPy 1.26)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy 1 without the shim
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

__all__ = ["load_pickle"]

GZIP_MAGIC = b"\x1f\x8b"


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocols 0-2 use it for ``bytes``: ``encode(str, "latin1")``, nothing else
    (no other codec can be looked up through a data file)."""
    if not isinstance(text, str) or not isinstance(encoding, str):
        raise pickle.UnpicklingError("_codecs.encode called with non-string arguments")
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode asked for codec {_shown(encoding)}, not latin-1")
    return text.encode("latin1")


_NUMPY = {
    "multiarray": {"_reconstruct": _multiarray._reconstruct, "scalar": _multiarray.scalar},
    "numeric": {"_frombuffer": _numeric._frombuffer},
}
_BUILTINS = {"set": set, "frozenset": frozenset, "bytearray": bytearray, "complex": complex}

#: (module, name) -> the object handed to the unpickler; nothing outside this table is ever imported.
ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    **{
        (f"{package}.{module}", name): obj
        for package in ("numpy.core", "numpy._core")
        for module, names in _NUMPY.items()
        for name, obj in names.items()
    },
    **{(module, name): obj for module in ("builtins", "__builtin__") for name, obj in _BUILTINS.items()},
}


def _shown(text: Any, limit: int = 80) -> str:
    """A name taken from a file, safe to print on one line."""
    text = str(text)
    return text if text.isprintable() and len(text) <= limit else ascii(text[:limit])


def _one_line(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class RefusedGlobal(pickle.UnpicklingError):
    """A file asked for a global outside :data:`ALLOWED`."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{_shown(module)}.{_shown(name)}")


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only :data:`ALLOWED`; no persistent ids."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[module, name]
        except (KeyError, TypeError):
            raise RefusedGlobal(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not supported")


def load_pickle(source: str | Path | IO[bytes], *, what: str, encoding: str = "ASCII") -> Any:
    """Unpickle ``source`` (a path, or a binary file object) without executing code.

    ``what`` names the expected content for messages ("CIFAR-10 batch", "MNIST pickle"); ``encoding``
    is passed to the unpickler for Python 2 strings ("bytes" or "latin1" for the classic data sets).
    A path whose file starts with the gzip magic number is decompressed (a file object is read as it
    is: wrap it in ``gzip.open`` yourself). Raises a one-line
    :class:`~spinlearn.errors.DataError` when the file is unreadable, damaged, or asks for any global
    outside :data:`ALLOWED`.
    """
    if not isinstance(source, str | Path):
        return _load(source, str(getattr(source, "name", "<stream>")), what, encoding)
    name = str(source)
    try:
        with open(source, "rb") as fh:
            gzipped = fh.peek(2)[:2] == GZIP_MAGIC
            return _load(gzip.GzipFile(fileobj=fh, mode="rb") if gzipped else fh, name, what, encoding)
    except OSError as exc:  # opening or reading the file itself; damaged contents are handled in _load
        raise DataError(f"cannot read {what} {name}: {exc.strerror or _one_line(exc)}") from None


def _load(stream: IO[bytes], name: str, what: str, encoding: str) -> Any:
    try:
        return RestrictedUnpickler(stream, encoding=encoding).load()
    except RefusedGlobal as exc:
        raise DataError(
            f"refusing to load {name}: it asks for {exc}, which no {what} holds "
            "(data files are read without executing code)"
        ) from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read {what} {name}: truncated or damaged ({_one_line(exc)})") from None
    except MemoryError:
        raise DataError(f"cannot read {what} {name}: it asks for more memory than there is") from None
    except Exception as exc:  # not a pickle, truncated, bad zlib data, arguments numpy rejects, ...
        raise DataError(f"cannot read {what} {name}: {_one_line(exc)}") from None
