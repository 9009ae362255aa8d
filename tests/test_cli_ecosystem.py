"""The command line's small things (issues 24 and 26): version, help, show as YAML, closed pipes,
bad input in one line, missing extras, logging."""

import subprocess
import sys
from importlib import metadata

import pytest
import yaml
from cli_helpers import spinlearn

from spinlearn import _jit, cli, config
from spinlearn._experiment_names import builtin_names
from spinlearn.experiments import EXPERIMENTS


def test_version_is_the_installed_distributions():
    out = spinlearn("--version")
    assert (out.returncode, out.stdout) == (0, f"spinlearn {metadata.version('spinlearn')}\n")


def test_help_lists_the_experiments_without_importing_torch():
    assert builtin_names() == tuple(sorted(EXPERIMENTS))  # read from the source: must be the registry's
    code = (
        "import sys\nfrom spinlearn.cli import main\n"
        "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch imported' if 'torch' in sys.modules else 'torch not imported')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.endswith("torch not imported\n"), out.stderr
    text = " ".join(out.stdout.split())
    assert "an experiment: afd-gradcheck, cifar10-danp, cifar10-dw-resnet18, cifar100-danp," in text
    assert "--device {auto,cpu,cuda,cuda:N}" in text and "cuda or cuda:N (default: auto)" in text
    assert "number of seeds (S .. S+N-1) (default: 1)" in text


def test_every_default_is_shown(capsys):
    with pytest.raises(SystemExit):
        cli.main(["calibrate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "over +/- max_current_a (default: 61)" in text and "read noise) (default: 4)" in text


def test_show_prints_yaml_that_config_and_set_take_back(capsys, tmp_path):
    assert cli.main(["show", "iris-afd"]) == 0
    text = capsys.readouterr().out
    assert "  delta_i_a: 2.0e-06  # finite-difference step" in text
    assert "  dir: null  # directory of data files" in text
    exp = EXPERIMENTS["iris-afd"]
    assert config.build(exp.config_cls, None, yaml.safe_load(text)) == exp.default_config()


def test_a_closed_pipe_ends_quietly():
    child = subprocess.Popen(
        [sys.executable, "-m", "spinlearn", "show", "mnist-afd"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()  # the reader is gone before a line is written (`| head -0`)
    stderr = child.stderr.read().decode()
    assert (child.wait(timeout=60), stderr) == (0, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "model.hidden=16"], "model.hidden = 16: expected a list, e.g. model.hidden=[16]"),
        (["--device", "gpu"], "--device must be one of auto, cpu, cuda, cuda:N, got 'gpu'"),
        (["--device", "cpu:1"], "--device must be one of auto, cpu, cuda, cuda:N, got 'cpu:1'"),
        (
            ["--plot-format", "png,jpg"],
            "--plot-format 'png,jpg': formats are png, pdf, svg (comma-separated)",
        ),
        (["--log-to", "wandb"], "--log-to 'wandb': trackers are tensorboard, mlflow"),
        (["--from", "/nonexistent"], "--from: cannot read /nonexistent/run.yaml: No such file or directory"),
    ],
)
def test_bad_run_input_is_one_line(args, message, tmp_path, capsys):
    assert cli.main(["run", "iris-tanh", "--quiet", "--out", str(tmp_path), *args]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"spinlearn: error: {message}\n"


def test_run_needs_a_name_or_a_record(capsys):
    assert cli.main(["run", "--quiet"]) == 2
    assert capsys.readouterr().err == "spinlearn: error: run needs an experiment NAME or --from RUN_DIR\n"


def test_a_missing_tracker_names_its_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an install without [tracking] sees
    args = ["run", "iris-tanh", "--quiet", "--out", str(tmp_path), "--log-to", "mlflow"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "spinlearn: error: --log-to mlflow needs the [tracking] extra: pip install 'spinlearn[tracking]'\n"
    )


def test_without_numba_the_eager_path_runs_and_says_so_once(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.setattr(_jit, "_numba", None)
    assert not _jit.available()
    out = str(tmp_path)
    code = (
        "import sys\nsys.modules['numba'] = None\nfrom spinlearn.cli import main\n"
        f"args = ['-v', 'run', 'iris-afd', '--set', 'train.epochs=1', '--quiet', '--out', {out!r}]\n"
        "sys.exit(main(args))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert (
        lines.count(
            "spinlearn: numba is not installed: the fused CPU kernels are off, the eager path runs "
            "(pip install 'spinlearn[fast]' for them)"
        )
        == 1
    )
    assert any(" spinlearn INFO: iris-afd: seeds 0..0 on cpu into " in line for line in lines)  # -v
    assert "test_accuracy_mean" in out.stdout


def test_an_instrument_without_the_lab_extra_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvisa", None)
    args = ["calibrate", "--resource", "TCPIP::127.0.0.1::5025::SOCKET", "--out", str(tmp_path / "p.yaml")]
    assert cli.main([*args, "--quiet"]) == 2
    assert (
        capsys.readouterr().err
        == "spinlearn: error: an instrument needs the [lab] extra: pip install 'spinlearn[lab]'\n"
    )
