"""The guide cannot rot: every Python example of README.md and docs/ runs, the package's doctests pass,
and the README keeps the shape a newcomer relies on.

Each Markdown file's ```python blocks run in a fresh interpreter (one per file, each block in a
namespace of its own, in a temporary directory): an example that registers an experiment or seeds
torch's global generator cannot leak into the other tests of this process. A block preceded by the
line ``<!-- no-run -->`` is an illustrative fragment and is skipped.
"""

from __future__ import annotations

import doctest
import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
NO_RUN = "<!-- no-run -->"
README_MAX_LINES = 200

# A fenced block: its indentation, info string and body, up to the closing fence at the same indent.
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)

# Runs in the child interpreter: reads [[label, source], ...] from stdin and executes each block in a
# namespace of its own; the code object's file name is the Markdown file and line, so a traceback
# points at the example.
RUNNER = """
import json, sys, traceback
failed = 0
for label, source in json.load(sys.stdin):
    try:
        exec(compile(source, label, "exec"), {"__name__": "__main__"})
    except BaseException:
        failed += 1
        print(f"FAILED {label}", file=sys.stderr)
        traceback.print_exc()
sys.exit(1 if failed else 0)
"""


def fenced_blocks(path: Path) -> list[tuple[int, str, str]]:
    """``(first line of the body, info string, body)`` for every fenced block of a Markdown file."""
    text = path.read_text()
    blocks = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start("body")) + 1
        blocks.append((line, m.group("info").strip(), textwrap.dedent(m.group("body"))))
    return blocks


def python_blocks(path: Path) -> list[tuple[str, str]]:
    """``(label, source)`` of the runnable Python blocks: not those marked ``<!-- no-run -->``."""
    lines = path.read_text().splitlines()
    out = []
    for line, info, body in fenced_blocks(path):
        if info.split()[:1] != ["python"]:
            continue
        above = [text.strip() for text in lines[: line - 2] if text.strip()]  # line - 2: the fence
        if above and above[-1] == NO_RUN:
            continue
        out.append((f"{path.relative_to(ROOT)}:{line}", body))
    return out


FILES_WITH_EXAMPLES = [path for path in DOC_FILES if python_blocks(path)]


def test_the_guide_has_python_examples_to_run():
    names = {str(path.relative_to(ROOT)) for path in FILES_WITH_EXAMPLES}
    assert "README.md" in names and "docs/index.md" in names, names


@pytest.mark.parametrize("path", FILES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_example_runs(path, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(python_blocks(path)),
        capture_output=True,
        text=True,
        cwd=tmp_path,  # examples that write (runs/...) write here
        env=env,
        timeout=300,
    )
    if result.returncode:
        pytest.fail(result.stderr[-4000:], pytrace=False)


# -- the README's shape ---------------------------------------------------------------------------------


def test_the_readme_is_a_guide_of_at_most_200_lines():
    n = len(README.read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move the long parts to docs/"


def test_the_readme_opens_with_exactly_make_demo_and_make_test():
    _, _, body = fenced_blocks(README)[0]
    assert body.split("\n") == ["make demo", "make test", ""], body


def test_the_readmes_relative_links_point_at_files_of_the_repository():
    # mkdocs --strict checks the links of docs/; the README is not part of the site.
    targets = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:|#", t)]
    assert local, "the README links into docs/"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, missing


# -- doctests -------------------------------------------------------------------------------------------


def modules_with_doctests() -> list[str]:
    """Dotted names of the spinlearn modules whose source holds a ``>>>`` example."""
    names = []
    for path in sorted((ROOT / "spinlearn").rglob("*.py")):
        if ">>>" in path.read_text():
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("name", modules_with_doctests() or [pytest.param(None, marks=pytest.mark.skip)])
def test_the_doctests_of_the_package_pass(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    assert tests, f"{name} holds '>>>' but doctest finds no example in its docstrings"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} doctest(s) of {name} failed (output above)"


# -- the generated configuration reference --------------------------------------------------------------


def test_the_configuration_reference_lists_every_experiment_and_key():
    pytest.importorskip("griffe")  # the docs extra; `make setup` installs it
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        hooks = importlib.import_module("_hooks")
    finally:
        sys.path.remove(str(ROOT / "docs"))
    from spinlearn import config
    from spinlearn.experiments import EXPERIMENTS

    page = hooks.config_reference()
    for exp in EXPERIMENTS.values():
        assert f"### `{exp.name}`" in page
        for key, _, _ in config.describe(exp.config_cls):
            assert f"| `{key}` |" in page, (exp.name, key)
