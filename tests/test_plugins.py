"""Experiments from outside spinlearn: the guide's example module, installed as a real plug-in (a
``*.dist-info`` with ``entry_points.txt`` on PYTHONPATH, which is what importlib.metadata reads) or
run as ``module:NAME`` from the current directory, is listed, run and resumed like a built-in one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_docs import ROOT, python_blocks
from test_resume import assert_resume_gives_the_uninterrupted_metrics

from spinlearn import cli

GUIDE = ROOT / "docs" / "own-work.md"
QUICK = ("--set", "xor.samples=128", "--set", "train.epochs=3")


def example_module() -> str:
    """The guide's example experiment, as printed there."""
    (source,) = [body for _, body in python_blocks(GUIDE) if body.startswith('"""my_study.py')]
    return source


def install(site: Path, modules: dict[str, str], entry_points: str) -> Path:
    """``modules`` (name -> source) and a distribution declaring ``entry_points`` in ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)
    info = site / "my_studies-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-studies\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[spinlearn.experiments]\n{entry_points}\n")
    return site


def test_an_installed_plugin_is_listed_run_and_resumed(tmp_path, monkeypatch):
    site = install(tmp_path / "site", {"my_study": example_module()}, "my-studies = my_study")
    monkeypatch.setenv("PYTHONPATH", str(site))
    listed = subprocess.run([sys.executable, "-m", "spinlearn", "list"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("xor-mtj ") and "XOR" in line for line in listed.stdout.splitlines())
    assert "iris-afd" in listed.stdout
    # killed after its second epoch, resumed: the metrics of the uninterrupted run, which learns XOR
    assert_resume_gives_the_uninterrupted_metrics(tmp_path, "record", 2, "xor-mtj", *QUICK)
    summary = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["experiment"] == "xor-mtj"
    assert summary["metrics"]["test_accuracy_mean"] >= 0.9


def test_a_module_in_the_current_directory_is_found_as_module_colon_name(tmp_path):
    """The module is not on PYTHONPATH: it is imported from the current directory (``run`` finds an
    experiment as ``show`` does; the plug-in test above runs one)."""
    (tmp_path / "my_study.py").write_text(example_module())
    done = subprocess.run(
        [sys.executable, "-m", "spinlearn", "show", "my_study:xor-mtj"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# xor-mtj: XOR of two noisy inputs")
    assert "\nxor:\n" in done.stdout  # its own config section, as YAML
    assert "\n  spread: 0.3  # standard deviation of every cluster\n" in done.stdout


BROKEN = "raise ImportError('needs numpy 1.x')\n"
DUPLICATE = "from spinlearn.experiments import iris\n\ndef add():\n    iris.experiment('iris-afd', 'again')\n"


@pytest.mark.parametrize(
    ("modules", "entry", "args", "message"),
    [
        (
            {"broken_plug": BROKEN},
            "bad-plugin = broken_plug",
            ["list"],
            "plug-in 'bad-plugin' (broken_plug, entry",
        ),
        (
            {"broken_plug": BROKEN},
            "bad-plugin = broken_plug",
            ["run", "not-built-in"],
            "ImportError: needs numpy 1.x",
        ),
        ({}, "gone = no_such_module", ["list"], "plug-in 'gone' (no_such_module"),
        (
            {"dup_plug": DUPLICATE},
            "dup = dup_plug:add",
            ["list"],
            "'iris-afd' registered twice",
        ),
        ({}, "", ["run", "absent_module:x"], "cannot import module 'absent_module' for 'absent_module:x'"),
        ({"empty_plug": ""}, "", ["show", "empty_plug:x"], "module 'empty_plug' registers no experiment 'x'"),
        ({}, "", ["run", ":x"], "expected module:NAME"),
    ],
)
def test_a_broken_plugin_or_module_is_one_line_naming_it(
    tmp_path, monkeypatch, capsys, modules, entry, args, message
):
    site = install(tmp_path / "site", modules, entry)
    monkeypatch.syspath_prepend(str(site))
    code = cli.main([*args, "--out", str(tmp_path / "run")] if args[0] == "run" else args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
