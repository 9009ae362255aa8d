"""The built-in experiments' names, read from the experiment modules' source without importing them.

``spinlearn run --help`` lists them; importing the registry would import torch (seconds), and help
must come at once. Names are found where the modules register them: ``Experiment(name="...")`` and
calls of a :func:`~spinlearn.experiments.registry.family` function with the name first. A test
checks that this list is the registry's.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent / "experiments"


def _module_names(tree: ast.Module) -> list[str]:
    families = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", None) == "family"
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = getattr(node.func, "id", None)
        if func == "Experiment":
            found += [
                k.value.value
                for k in node.keywords
                if k.arg == "name" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
            ]
        elif func in families and node.args and isinstance(node.args[0], ast.Constant):
            found.append(node.args[0].value)
    return found


@functools.cache
def builtin_names() -> tuple[str, ...]:
    """Every built-in experiment's name, sorted."""
    names: list[str] = []
    for path in sorted(_PACKAGE.glob("*.py")):
        names += _module_names(ast.parse(path.read_text(), str(path)))
    return tuple(sorted(set(names)))
