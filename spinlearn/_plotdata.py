"""The numbers behind a matplotlib figure, read back from the figure itself, as one CSV table.

Read from what was drawn rather than kept by each plot function, so that every plot gets its data
file and none can drift from its picture. One row per point, in columns

``panel, x_label, y_label, series, x, y, low, high, value``:

- lines and scatter points: ``x``, ``y`` (``series``: the legend label, or ``line<k>``);
- a ``fill_between`` band (the ± std around a mean): ``x``, ``low``, ``high``;
- bars: ``x`` (the category's name on a categorical axis), ``y`` the bar's top, ``low`` its bottom;
- images (matrices, patterns): ``x`` the column, ``y`` the row, ``value`` the pixel.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

COLUMNS = ("panel", "x_label", "y_label", "series", "x", "y", "low", "high", "value")


def _label(artist: Any, fallback: str) -> str:
    label = artist.get_label() or ""
    return fallback if not label or label.startswith("_") else label


def _tick_names(ax: Any) -> dict[float, str]:
    return {float(t.get_position()[0]): t.get_text() for t in ax.get_xticklabels() if t.get_text()}


def _band(path_vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """x, low, high of a ``fill_between`` polygon: start, N points along one edge, end, N back."""
    v = path_vertices
    n = (len(v) - 2) // 2
    if n < 1 or len(v) < 2 * n + 2:
        return None
    x, one = v[1 : n + 1, 0], v[1 : n + 1, 1]
    back_x, other = v[n + 2 : 2 * n + 2, 0][::-1], v[n + 2 : 2 * n + 2, 1][::-1]
    if not np.allclose(x, back_x):
        return None
    return x, np.minimum(one, other), np.maximum(one, other)


def _panel_rows(k: int, ax: Any) -> list[dict[str, Any]]:
    from matplotlib.collections import PathCollection, PolyCollection

    panel = ax.get_title() or f"panel{k}"
    common = {"panel": panel, "x_label": ax.get_xlabel(), "y_label": ax.get_ylabel()}
    rows: list[dict[str, Any]] = []
    for j, line in enumerate(ax.get_lines()):
        series = _label(line, f"line{j}")
        for x, y in zip(np.asarray(line.get_xdata()), np.asarray(line.get_ydata()), strict=False):
            rows.append({**common, "series": series, "x": x, "y": y})
    for j, coll in enumerate(ax.collections):
        if isinstance(coll, PathCollection):
            series = _label(coll, f"points{j}")
            rows += [{**common, "series": series, "x": x, "y": y} for x, y in np.asarray(coll.get_offsets())]
        elif isinstance(coll, PolyCollection):
            series = _label(coll, f"band{j}")
            for path in coll.get_paths():
                band = _band(np.asarray(path.vertices))
                if band is not None:
                    rows += [
                        {**common, "series": series, "x": x, "low": lo, "high": hi}
                        for x, lo, hi in zip(*band, strict=True)
                    ]
    names = _tick_names(ax)
    for j, container in enumerate(getattr(ax, "containers", [])):
        series = _label(container, f"bars{j}")
        for patch in getattr(container, "patches", []):
            center = patch.get_x() + patch.get_width() / 2
            x = names.get(float(center), center)
            rows.append(
                {
                    **common,
                    "series": series,
                    "x": x,
                    "y": patch.get_y() + patch.get_height(),
                    "low": patch.get_y(),
                }
            )
    for j, image in enumerate(ax.images):
        array = np.asarray(image.get_array())
        if array.ndim != 2:
            continue
        series = _label(image, f"image{j}")
        rows += [
            {**common, "series": series, "x": c, "y": r, "value": array[r, c]}
            for r in range(array.shape[0])
            for c in range(array.shape[1])
        ]
    return rows


def figure_csv(fig: Any) -> str:
    """Every panel's data as CSV text (header row first)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for k, ax in enumerate(fig.axes):
        for row in _panel_rows(k, ax):
            writer.writerow({key: _cell(value) for key, value in row.items()})
    return buf.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, float) else value
