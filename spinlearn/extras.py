"""Optional dependencies (pip extras): importing one, or saying in one line which extra to install.

``spinlearn[lab]`` (instruments: pyvisa, pyvisa-py, pymeasure), ``[fast]`` (numba: the fused CPU
kernels), ``[sweep]`` (ray[tune]), ``[tracking]`` (TensorBoard, MLflow), ``[parquet]`` (pyarrow),
``[docs]`` (mkdocs). The simulated devices, every experiment and the CLI need none of them.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from spinlearn.errors import UserInputError


class MissingExtra(UserInputError):
    """A command needs an optional dependency that is not installed."""


def require(module: str, extra: str, what: str) -> Any:
    """``import module``, or :class:`MissingExtra`: "``what`` needs the [extra] extra: pip install ..."."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{what} needs the [{extra}] extra: pip install 'spinlearn[{extra}]'") from None


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found, not imported: cheap)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
