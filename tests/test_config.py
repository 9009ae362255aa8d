"""Configuration: overrides, YAML files, validation messages."""

import re

import pytest

from spinlearn import config
from spinlearn.errors import ConfigError
from spinlearn.experiments import EXPERIMENTS
from spinlearn.experiments.iris import IrisConfig


def build(*items, tree=None):
    return config.build(IrisConfig, tree=tree, overrides=config.parse_overrides(list(items)))


def test_overrides_are_parsed_and_typed():
    cfg = build("device.variability=0.15", "afd.delta_i_a=2e-6", "model.hidden=[8, 4]", "afd.calibrate=false")
    assert cfg.device.variability == 0.15
    assert cfg.afd.delta_i_a == 2e-6
    assert cfg.model.hidden == (8, 4)
    assert cfg.afd.calibrate is False
    assert cfg.train == IrisConfig().train  # untouched sections stay as they were


def test_null_twin_mismatch_means_independent_twins():
    assert build("device.twin_mismatch=null").device.twin_mismatch is None


@pytest.mark.parametrize(
    "item, message",
    [
        ("afd.delta_i_a=0", "afd.delta_i_a = 0.0: must be > 0"),
        ("device.variability=-0.1", "device.variability = -0.1: must be >= 0"),
        ("train.lr=fast", "train.lr = 'fast': expected a number"),
        ("train.epochs=2.5", "train.epochs = 2.5: expected an integer"),
        ("train.nope=1", "unknown config key 'train.nope'"),
        ("nope.x=1", "unknown config section 'nope'"),
        ("train.optimizer=rmsprop", "must be one of sgd, adam"),
        ("model.hidden=[0]", "model.hidden = (0,): must be >= 1"),
        ("train.lr", "--set expects dotted.key=value"),
        ("train.lr=[1,", "cannot parse value"),
        ("model.hidden=[]", "model.hidden = []: needs at least 1 item"),
        ("device.v_half_v=1e-300", "device.v_half_v = 1e-300: must be >= 0.001"),
        ("device.r_p_ohm=1e300", "device.r_p_ohm = 1e+300: must be >= 1 and <= 1e+09"),
        ("train.weight_decay=1e300", "must be >= 0 and <= 1"),
    ],
)
def test_bad_values_name_the_key_and_the_problem(item, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build(item)


def test_yaml_file_accepts_scientific_notation_without_a_dot(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("afd:\n  delta_i_a: 2e-6\nmodel:\n  hidden: [1e1]\n")
    cfg = config.build(IrisConfig, tree=config.load_yaml(path))
    assert cfg.afd.delta_i_a == 2e-6 and cfg.model.hidden == (10,)


def test_non_utf8_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"train:\n  lr: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load_yaml(path)


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\n  lr: 0.01\ndevice:\n  variability: 0.2\n")
    cfg = config.build(IrisConfig, tree=config.load_yaml(path), overrides={"train.lr": 0.02})
    assert (cfg.train.epochs, cfg.train.lr, cfg.device.variability) == (7, 0.02, 0.2)


def test_dumped_config_loads_back_identically(tmp_path):
    cfg = build("model.hidden=[5, 6]", "device.twin_mismatch=null")
    path = tmp_path / "config.yaml"
    path.write_text(config.dump_yaml(cfg))
    assert config.build(IrisConfig, tree=config.load_yaml(path)) == cfg


@pytest.mark.parametrize("text, message", [("train: [1,\n", "malformed YAML"), ("- 1\n", "mapping")])
def test_malformed_yaml_files_are_config_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        config.build(IrisConfig, tree=config.load_yaml(path))


def test_missing_yaml_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load_yaml(tmp_path / "absent.yaml")


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_config_documents_every_key(name):
    exp = EXPERIMENTS[name]
    rows = config.describe(exp.config_cls)
    assert rows
    assert all(doc for _, _, doc in rows), [key for key, _, doc in rows if not doc]
    for section in ("device", "train"):  # Hopfield sweeps generate their patterns: no data section
        assert any(key.startswith(section + ".") for key, _, _ in rows)
