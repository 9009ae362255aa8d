"""Property tests (hypothesis): config dump -> build is the identity, ``--set`` typing, SCPI numbers."""

import dataclasses
import math
import typing

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spinlearn import config
from spinlearn.errors import ConfigError
from spinlearn.experiments import EXPERIMENTS
from spinlearn.hardware import scpi

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _scalar_fields(cfg):
    """``(dotted key, strategy)`` for every number, flag and choice of a config."""
    out = []
    for section_field in dataclasses.fields(cfg):
        section = getattr(cfg, section_field.name)
        hints = typing.get_type_hints(type(section))
        for f in dataclasses.fields(section):
            meta, kind = f.metadata, hints[f.name]
            key = f"{section_field.name}.{f.name}"
            if meta.get("choices"):
                out.append((key, st.sampled_from(meta["choices"])))
            elif kind is bool:
                out.append((key, st.booleans()))
            elif kind in (int, float):
                lo = next((meta[k] for k in ("ge", "gt") if meta.get(k) is not None), -1e6)
                hi = next((meta[k] for k in ("le", "lt") if meta.get(k) is not None), 1e6)
                if kind is int:
                    out.append((key, st.integers(math.ceil(lo), min(math.floor(hi), 10**6))))
                else:
                    out.append((key, st.floats(lo, hi, exclude_min=True, exclude_max=True)))
    return out


@st.composite
def configs(draw):
    """An experiment's config with a few of its scalars changed to values in their ranges."""
    exp = EXPERIMENTS[draw(st.sampled_from(sorted(EXPERIMENTS)))]
    fields = _scalar_fields(exp.default_config())
    chosen = draw(st.lists(st.sampled_from(range(len(fields))), min_size=1, max_size=4, unique=True))
    overrides = {fields[k][0]: draw(fields[k][1]) for k in chosen}
    try:
        return exp, config.build(exp.config_cls, exp.default_config(), None, overrides)
    except ConfigError:  # a combination the config refuses as a whole
        assume(False)


@FAST
@given(configs())
def test_dump_then_build_is_the_identity(case):
    exp, cfg = case
    assert config.build(exp.config_cls, None, yaml.safe_load(config.dump_yaml(cfg))) == cfg
    # what `spinlearn show` prints reads back the same
    assert config.build(exp.config_cls, None, yaml.safe_load(config.dump_commented_yaml(cfg))) == cfg


@FAST
@given(configs())
def test_every_value_as_shown_goes_back_through_set(case):
    exp, cfg = case
    items = [
        f"{section}.{line.split(':', 1)[0].strip()}={line.split(':', 1)[1].split('  #')[0].strip()}"
        for section, text in _sections(config.dump_commented_yaml(cfg))
        for line in text
    ]
    assert config.build(exp.config_cls, None, None, config.parse_overrides(items)) == cfg


def _sections(text):
    section, lines = None, []
    for line in text.splitlines():
        if not line.startswith(" "):
            if section:
                yield section, lines
            section, lines = line.rstrip(":"), []
        else:
            lines.append(line)
    yield section, lines


IRIS = EXPERIMENTS["iris-afd"]


def _set(*items):
    return config.build(IRIS.config_cls, None, None, config.parse_overrides(list(items)))


@FAST
@given(st.floats(0, 100, exclude_min=True))
def test_a_number_set_is_the_number(lr):
    assert _set(f"train.lr={lr!r}").train.lr == lr


@FAST
@given(st.text(st.characters(codec="ascii", exclude_characters="\"\\'\n\r\t"), min_size=1, max_size=20))
def test_a_quoted_value_stays_text(text):
    assume(text.strip() == text and text.isprintable())
    assert _set(f'data.dir="{text}"').data.dir == text
    assert _set(f"data.dir='{text}'").data.dir == text


@FAST
@given(st.integers(1, 4096))
def test_a_scalar_for_a_list_is_refused(width):
    with pytest.raises(ConfigError, match=r"model\.hidden = .*expected a list"):
        _set(f"model.hidden={width}")
    assert _set(f"model.hidden=[{width}]").model.hidden == (width,)


@FAST
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=40))
def test_scpi_number_lists_read_back_as_written(values):
    text = scpi.number_list(values)
    parsed = np.array([scpi.parse_number(item) for item in text.split(",")])
    assert np.array_equal(parsed, scpi.as_written(np.array(values)))
    assert np.allclose(parsed, values, rtol=5e-8, atol=0)


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_scpi_readings_round_trip_to_seven_digits(value):
    assume(abs(value) < 9.9e37)
    text = scpi.format_number(value)
    assert math.isclose(float(text), value, rel_tol=5e-7, abs_tol=0)
    assert scpi.format_number(float(text)) == text


@FAST
@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=30))
def test_scpi_channel_lists_round_trip(channels):
    assert scpi.parse_channel_list(scpi.channel_list(channels)) == channels
