"""MTJ device equations against hand-computed values and analytic properties."""

import math

import pytest
import torch

from spinlearn.devices import MTJ, MTJParams, mtj
from spinlearn.errors import ConfigError

F64 = torch.float64


def nominal(params: MTJParams, n: int = 1) -> mtj.MTJPopulation:
    return mtj.nominal_population(params, n, dtype=F64)


def test_voltage_matches_hand_computation_without_bias_dependence():
    # V_h huge: TMR(V) = TMR0. I = I_s: m = tanh(1) = 0.7615941559557649
    # R = 1000 (1 + 1.0 (1 - 0.7615941559557649) / 2) = 1119.2029220221176 ohm; V = 1e-4 R.
    params = MTJParams(r_p_ohm=1000.0, tmr0=1.0, v_half_v=1e6, i0_a=0.0, is_a=1e-4)
    v = mtj.voltage(torch.tensor([[1e-4]], dtype=F64), nominal(params))
    assert v.item() == pytest.approx(0.11192029220221176, rel=1e-12)


def test_voltage_with_bias_dependence_solves_the_implicit_equation():
    # Hand check at I = -I_s, R_P = 1 kohm, TMR0 = 1.2, V_h = 0.5 V: m = -tanh(1), so
    # V = I R_P (1 + 1.2 (1 + tanh 1)/2 / (1 + V^2/0.25)); solved by bisection below.
    params = MTJParams(r_p_ohm=1000.0, tmr0=1.2, v_half_v=0.5, i0_a=0.0, is_a=1e-4)
    i = -1e-4
    m = -math.tanh(1.0)

    def g(v):
        return v - i * 1000.0 * (1 + 1.2 * (1 - m) / 2 / (1 + v * v / 0.25))

    lo, hi = -1.0, 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if g(mid) < 0 else (lo, mid)
    v = mtj.voltage(torch.tensor([[i]], dtype=F64), nominal(params))
    assert v.item() == pytest.approx(lo, abs=1e-12)


def test_newton_residual_is_tiny_over_a_wide_range_and_a_varied_population():
    gen = torch.Generator().manual_seed(0)
    pop = mtj.sample_population(MTJParams(), 64, 0.2, gen, F64)
    current = torch.linspace(-2e-3, 2e-3, 401, dtype=F64)[:, None].expand(401, 64)
    v = mtj.voltage(current, pop)
    r = mtj.resistance(mtj.free_layer_response(current, pop), v, pop)
    assert (v - current * r).abs().max() < 1e-12


def test_resistance_limits_and_tmr_bias_dependence():
    params = MTJParams(r_p_ohm=800.0, tmr0=1.5, v_half_v=0.4)
    pop = nominal(params)
    zero = torch.zeros(1, 1, dtype=F64)
    assert mtj.resistance(torch.ones(1, 1, dtype=F64), zero, pop).item() == pytest.approx(800.0)
    assert mtj.resistance(-torch.ones(1, 1, dtype=F64), zero, pop).item() == pytest.approx(2000.0)
    assert params.r_ap_ohm == pytest.approx(2000.0)
    half = mtj.tmr_at_bias(torch.full((1, 1), 0.4, dtype=F64), pop).item()
    assert half == pytest.approx(0.75)


def test_free_layer_response_is_the_tunable_tanh():
    params = MTJParams(i0_a=20e-6, is_a=50e-6)
    m = mtj.free_layer_response(torch.tensor([[70e-6]], dtype=F64), nominal(params))
    assert m.item() == pytest.approx(math.tanh(1.0))


def test_population_spread_matches_variability():
    gen = torch.Generator().manual_seed(1)
    pop = MTJ(MTJParams(), variability=0.1).sample(200_000, gen, F64)
    assert pop.r_p_ohm.mean().item() == pytest.approx(1000.0, rel=2e-3)
    assert (pop.r_p_ohm.std() / pop.r_p_ohm.mean()).item() == pytest.approx(0.1, rel=0.02)
    assert pop.i0_a.std().item() == pytest.approx(0.1 * 100e-6, rel=0.02)
    assert (pop.v_half_v == 0.5).all()


def test_read_noise_has_the_configured_rms():
    gen = torch.Generator().manual_seed(2)
    pop = nominal(MTJParams(), 1000)
    current = torch.full((100, 1000), 1e-4, dtype=F64)
    reads = mtj.read(current, pop, 1e-3, gen)
    noise = reads - mtj.voltage(current, pop)
    assert noise.std().item() == pytest.approx(1e-3, rel=0.02)
    assert abs(noise.mean().item()) < 1e-5


def test_population_is_vectorised_over_batch_and_devices():
    gen = torch.Generator().manual_seed(3)
    pop = MTJ().sample(5, gen)
    v = mtj.voltage(torch.zeros(7, 5), pop)
    assert v.shape == (7, 5)
    assert (v == 0).all()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"r_p_ohm": -1.0}, "r_p_ohm"),
        ({"tmr0": 0.0}, "tmr0"),
        ({"is_a": 0.0}, "is_a"),
        ({"read_noise_v": -1e-3}, "read_noise_v"),
        ({"v_half_v": "x"}, "v_half_v"),
    ],
)
def test_bad_parameters_raise_config_error_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        MTJParams(**kwargs)


def test_negative_variability_is_refused():
    with pytest.raises(ValueError, match="variability"):
        MTJ(variability=-0.1)
