"""Measurement tables: CSV files with a header row, read into named columns, and written back.

One reader for every measured table a user brings (I-V sweeps, domain-wall pulse responses), so
that every malformed file fails the same way: one :class:`~spinlearn.errors.DataError` line naming
the file, the line and the column (unreadable file, missing column, ragged row, a cell that is not a
number, NaN or Inf).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spinlearn.errors import DataError
from spinlearn.io import write_text_atomic


def read_csv_table(
    path: str | Path, required: Sequence[str], optional: Sequence[str] = (), text: Sequence[str] = ("device",)
) -> dict[str, np.ndarray]:
    """The columns ``required`` (and those of ``optional`` present) of the CSV file ``path``.

    Columns named in ``text`` come back as arrays of ``str``, the others as float64 arrays, finite.
    Other columns are ignored. Raises :class:`DataError` (one line) on any defect.
    """
    path = Path(path)
    try:
        content = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    rows = [
        (n, row) for n, row in enumerate(csv.reader(io.StringIO(content)), 1) if any(c.strip() for c in row)
    ]
    if not rows:
        raise DataError(f"{path} is empty")
    header = [cell.strip() for cell in rows[0][1]]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column{'s' * (len(missing) > 1)} {', '.join(missing)} "
            f"(has: {', '.join(header)}; needs: {', '.join(required)})"
        )
    if len(rows) == 1:
        raise DataError(f"{path} holds a header but no rows")
    wanted = [c for c in (*required, *optional) if c in header]
    index = {c: header.index(c) for c in wanted}
    cells: dict[str, list] = {c: [] for c in wanted}
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} cells, the header has {len(header)}")
        for c in wanted:
            cells[c].append(row[index[c]].strip())
    out = {}
    for c in wanted:
        if c in text:
            out[c] = np.array(cells[c], dtype=str)
            continue
        values = np.empty(len(cells[c]))
        for k, cell in enumerate(cells[c]):
            try:
                values[k] = float(cell)
            except ValueError:
                raise DataError(f"{path}, line {rows[k + 1][0]}: {c} = {cell!r} is not a number") from None
            if not np.isfinite(values[k]):
                raise DataError(f"{path}, line {rows[k + 1][0]}: {c} is {cell} (measurements must be finite)")
        out[c] = values
    return out


def write_csv_table(path: str | Path, columns: dict[str, Sequence]) -> Path:
    """Write equal-length ``columns`` as a CSV file with a header (atomically); floats exactly (repr)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    for row in zip(*columns.values(), strict=True):
        writer.writerow([repr(float(v)) if isinstance(v, float | np.floating) else v for v in row])
    return write_text_atomic(path, buf.getvalue())
