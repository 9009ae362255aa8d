"""The command line, through a subprocess, as a user runs it."""

import json

import pytest
import yaml
from cli_helpers import spinlearn

QUICK = ["--set", "train.epochs=3", "--quiet"]


def test_list_names_every_experiment_with_its_target():
    out = spinlearn("list")
    assert out.returncode == 0
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert {"iris-afd", "iris-afd-2h", "iris-tanh", "afd-gradcheck"} <= set(lines)
    assert "paper 0.933" in lines["iris-afd"]


def test_show_prints_keys_with_docs():
    out = spinlearn("show", "iris-afd")
    assert out.returncode == 0
    assert "afd:\n" in out.stdout and "  delta_i_a: 2.0e-06  # finite-difference step" in out.stdout


def test_run_writes_every_output(tmp_path):
    out = spinlearn("run", "iris-afd", "--seeds", "2", "--seed", "3", "--out", str(tmp_path), *QUICK)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["experiment"] == "iris-afd"
    assert summary["seeds"] == [3, 4]
    assert summary["device"] == "cpu"
    assert summary["paper"] == {"test_accuracy_mean": 0.95}  # a simulated run: the simulation figure
    for key in ("test_accuracy_mean", "test_accuracy_std", "device_measurements_mean"):
        assert isinstance(summary["metrics"][key], float)
    assert 0 <= summary["metrics"]["test_accuracy_mean"] <= 1
    assert summary["metrics"]["test_accuracy"] == summary["metrics"]["test_accuracy_mean"]
    assert summary["spinlearn_version"] and summary["runtime_s"] > 0
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["seed"], r["epoch"]) for r in records] == [(s, e) for s in (3, 4) for e in (1, 2, 3)]
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["epochs"] == 3
    for png in ("learning_curves.png", "device_curves.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp"))


def test_same_seed_gives_the_same_summary_and_losses(tmp_path):
    runs = []
    for k in range(2):
        out = spinlearn("run", "iris-afd", "--seed", "7", "--out", str(tmp_path / str(k)), *QUICK)
        assert out.returncode == 0, out.stderr
        summary = json.loads((tmp_path / str(k) / "summary.json").read_text())
        runs.append((summary["metrics"], (tmp_path / str(k) / "metrics.jsonl").read_text()))
    assert runs[0] == runs[1]  # metrics.jsonl carries the float training losses


def test_a_failed_rerun_leaves_no_stale_summary(tmp_path):
    assert spinlearn("run", "iris-tanh", "--out", str(tmp_path), *QUICK).returncode == 0
    assert (tmp_path / "summary.json").exists()
    args = ["--set", "data.test_fraction=0.99", "--quiet", "--overwrite"]
    out = spinlearn("run", "iris-tanh", "--out", str(tmp_path), *args)
    assert out.returncode == 2
    assert not (tmp_path / "summary.json").exists()


def test_different_seeds_draw_different_devices(tmp_path):
    runs = []
    for seed in ("1", "2"):
        out = spinlearn("run", "iris-afd", "--seed", seed, "--out", str(tmp_path / seed), *QUICK)
        assert out.returncode == 0, out.stderr
        runs.append((tmp_path / seed / "metrics.jsonl").read_text())
    assert runs[0] != runs[1]


def test_config_file_is_applied(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochs: 2\nmodel:\n  hidden: [4]\n")
    out = spinlearn("run", "iris-tanh", "--config", str(cfg), "--out", str(tmp_path / "o"), "--quiet")
    assert out.returncode == 0, out.stderr
    assert len((tmp_path / "o" / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope"], "unknown experiment 'nope'"),
        (["run", "iris-afd", "--set", "train.nope=1"], "unknown config key 'train.nope'"),
        (["run", "iris-afd", "--set", "afd.delta_i_a=0"], "afd.delta_i_a = 0.0: must be > 0"),
        (["run", "iris-afd", "--set", "afd.delta_i_a=-1e-6"], "afd.delta_i_a = -1e-06: must be > 0"),
        (["run", "iris-afd", "--set", "device.variability=-0.1"], "device.variability = -0.1"),
        (["run", "iris-afd", "--set", "train.lr=abc"], "train.lr = 'abc': expected a number"),
        (["run", "iris-afd", "--config", "{bad}"], "malformed YAML"),
        (["run", "iris-afd", "--seeds", "0"], "--seeds must be >= 1"),
        (["run", "iris-afd", "--seeds", "two"], "invalid int value"),
        (
            ["run", "iris-afd", "--device", "tpu"],
            "--device must be one of auto, cpu, cuda, cuda:N, got 'tpu'",
        ),
        (["run", "iris-afd", "--set", "data.dir=/tmp"], "data.dir is not used by the Iris experiments"),
        (["run", "iris-afd", "--set", "data.test_fraction=0.99"], "data.test_fraction = 0.99"),
        (["run", "iris-afd", "--seed", "-1"], "seeds must lie in 0..4294967295"),
        (["run", "iris-afd", "--seed", "99999999999999999999"], "seeds must lie in"),
        (["run", "iris-afd", "--out", "{file}"], "cannot use output directory"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    if "{file}" in args:
        (tmp_path / "plain").write_text("x")
        args = [str(tmp_path / "plain") if a == "{file}" else a for a in args]
    if "{bad}" in args:
        bad = tmp_path / "bad.yaml"
        bad.write_text("train: {epochs: [1,\n")
        args = [str(bad) if a == "{bad}" else a for a in args]
    out = (
        spinlearn(*args, "--out", str(tmp_path / "o"))
        if args[0] == "run" and "--out" not in args
        else spinlearn(*args)
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0]
    assert "Traceback" not in out.stderr


def test_cuda_request_without_gpu_is_bad_input(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = spinlearn("run", "iris-afd", "--device", "cuda", "--out", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == "spinlearn: error: --device cuda requested but no CUDA GPU is available"


def test_every_quick_configuration_builds():
    """What `make demo` runs: each experiment with a target, with its quick overrides (the whole
    quick reproduce is the slow test below; `reproduce --only` runs one row in the default set)."""
    from spinlearn.report import _config, experiments_with_targets

    for exp in experiments_with_targets():
        assert _config(exp, quick=True) != _config(exp, quick=False) or not exp.quick, exp.name


@pytest.mark.slow  # 4-5 minutes of one core: the demo itself (`make demo`)
def test_reproduce_quick_writes_the_report(tmp_path):
    out = spinlearn("reproduce", "--quick", "--quiet", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    report = (tmp_path / "results.md").read_text()
    assert "| experiment | metric | paper | measured | verdict |" in report
    assert "quick" in report and "- commit: " in report and "- cpu: " in report
    assert (tmp_path / "table.md").read_text() in report
    names = ("iris-afd", "iris-afd-2h", "afd-gradcheck", "mnist-afd", "mnist-kd")
    for name in (*names, "mnist-dw-sgld", "dw-bits-sweep", "mnist-dw-resnet18"):
        assert f"| {name} |" in report
        assert (tmp_path / name / "summary.json").exists()
    sweep = json.loads((tmp_path / "dw-bits-sweep" / "summary.json").read_text())["metrics"]
    assert {"accuracy_bits_2_mean", "accuracy_bits_6_mean", "accuracy_float_sgld_mean"} <= set(sweep)
    assert sweep["accuracy_bits_6_mean"] > 0.8  # the quick sweep learns the 8x8 digits
    assert (tmp_path / "dw-bits-sweep" / "accuracy_vs_bits.png").is_file()
    assert (tmp_path / "mnist-dw-resnet18" / "reliability.png").is_file()
    assert "![learning_curves.png](iris-afd/learning_curves.png)" in report
    assert "not measured" not in report
    from spinlearn.report import experiments_with_targets

    rows = sum(len(e.targets_for("simulated")) for e in experiments_with_targets())
    verdicts = ("| reproduced", "| meets threshold", "| below target", "| no target |")
    assert sum(report.count(v) for v in verdicts) == rows
    assert "iris-afd" in out.stdout

    # Again with --resume: every experiment finished with this config, so nothing runs again.
    before = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/summary.json")}
    again = spinlearn("reproduce", "--quick", "--quiet", "--resume", "--out", str(tmp_path), timeout=120)
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/summary.json")} == before
    assert (tmp_path / "table.md").read_text() in (tmp_path / "results.md").read_text()


def test_reproduce_only_refreshes_some_rows_and_keeps_the_others(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:begin -->\nold table\n<!-- results:end -->\nrest\n")
    args = ["reproduce", "--quick", "--quiet", "--out", str(tmp_path / "r"), "--readme", str(readme)]
    done = spinlearn(*args, "--only", "hopfield-35")
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "r" / "table.md").read_text()
    assert "| hopfield-35 | recall_accuracy_mean |" in table and "| iris-afd |" in table
    assert "not measured" in table.split("| iris-afd |")[1].splitlines()[0]
    assert readme.read_text() == f"intro\n<!-- results:begin -->\n{table}<!-- results:end -->\nrest\n"
    kept = (tmp_path / "r" / "hopfield-35" / "summary.json").stat().st_mtime_ns
    done = spinlearn(*args, "--only", "afd-gradcheck")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "hopfield-35" / "summary.json").stat().st_mtime_ns == kept  # not run again
    table = (tmp_path / "r" / "table.md").read_text()
    assert "not measured" not in table.split("| hopfield-35 |")[1].splitlines()[0]
    assert "not measured" not in table.split("| afd-gradcheck |")[1].splitlines()[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "iris-afd,nope"], "--only iris-afd,nope: nope (experiments with a target:"),
        (["--readme", "/nonexistent/README.md"], "--readme /nonexistent/README.md: No such file"),
    ],
)
def test_reproduce_refuses_bad_input_before_running_anything(tmp_path, args, message):
    done = spinlearn("reproduce", "--quick", "--out", str(tmp_path / "r"), *args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "r").exists()
