"""Analog finite differences: twin-measured gradients against autograd of the device formula."""

import torch
from torch import nn

from spinlearn.devices import MTJ, MTJParams, mtj
from spinlearn.experiments import get
from spinlearn.experiments.registry import RunContext
from spinlearn.hardware import SimulatedBackend
from spinlearn.learning import AFDConfig, TwinCalibration
from spinlearn.nn import MTJActivation

F64 = torch.float64


def backend(variability=0.0, noise=0.0, twin_mismatch=0.0, seed=0):
    device = MTJ(MTJParams(read_noise_v=noise), variability)
    gen = torch.Generator().manual_seed(seed)
    return SimulatedBackend(device, gen, twin_mismatch=twin_mismatch, dtype=F64)


def input_grads(layer, z, weights):
    z = z.clone().requires_grad_(True)
    (layer(z) * weights).sum().backward()
    return z.grad


def formula_grads(be, group, z, weights):
    z = z.clone().requires_grad_(True)
    p = be.params
    y = mtj.voltage(z * p.current_scale_a, be.population(group)) / p.voltage_scale_v
    (y * weights).sum().backward()
    return z.grad


def test_ideal_twins_reproduce_the_autograd_derivative():
    be = backend()
    layer = MTJActivation(32, be, "h", AFDConfig(delta_i_a=1e-9, calibrate=False), F64)
    gen = torch.Generator().manual_seed(5)
    z = 3 * torch.randn(64, 32, generator=gen, dtype=F64)
    w = torch.randn(64, 32, generator=gen, dtype=F64)
    g_afd, g_exact = input_grads(layer, z, w), formula_grads(be, "h", z, w)
    assert torch.allclose(g_afd, g_exact, rtol=1e-4, atol=1e-8)


def test_the_derivative_is_read_from_the_twin_not_from_autograd():
    be = backend(variability=0.1, twin_mismatch=0.3)  # twins deliberately unlike their neurons
    delta = 1e-6
    layer = MTJActivation(8, be, "h", AFDConfig(delta_i_a=delta, calibrate=False), F64)
    z = torch.linspace(-3, 3, 8, dtype=F64).repeat(4, 1)
    grad = input_grads(layer, z, torch.ones_like(z))
    p = be.params
    current = z * p.current_scale_a
    twin = mtj.voltage(current + delta, be.population("h", twin=True))
    neuron = mtj.voltage(current, be.population("h"))
    expected = (twin - neuron) / delta * p.current_scale_a / p.voltage_scale_v
    assert torch.allclose(grad, expected, rtol=1e-12, atol=0)


def test_calibration_removes_most_of_the_twin_mismatch_bias():
    gen = torch.Generator().manual_seed(9)
    z = 3 * torch.randn(256, 16, generator=gen, dtype=F64)
    w = torch.ones_like(z)
    errors = {}
    for calibrate in (False, True):
        be = backend(variability=0.1, noise=1e-4, twin_mismatch=0.02, seed=3)
        layer = MTJActivation(16, be, "h", AFDConfig(delta_i_a=2e-6, calibrate=calibrate), F64)
        g_afd, g_exact = input_grads(layer, z, w), formula_grads(be, "h", z, w)
        errors[calibrate] = ((g_afd - g_exact).norm() / g_exact.norm()).item()
    assert errors[True] < 0.1
    assert errors[True] < errors[False] / 10


def test_calibration_interpolates_between_grid_points_and_extrapolates_beyond():
    offsets = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 9.0]], dtype=F64)
    cal = TwinCalibration(i_min_a=-1.0, step_a=1.0, offsets_v=offsets)
    current = torch.tensor([[-1.0, -1.0], [-0.5, 0.5], [1.0, 1.0], [5.0, -7.0]], dtype=F64)
    expected = torch.tensor([[0.0, 1.0], [1.0, 6.0], [4.0, 9.0], [12.0, -11.0]], dtype=F64)
    assert torch.equal(cal(current), expected)


def test_training_reads_neuron_and_twin_inference_reads_only_neurons():
    be = backend()
    layer = MTJActivation(10, be, "h", AFDConfig(calibrate=False))
    z = torch.zeros(7, 10, requires_grad=True)
    layer(z)
    assert be.measurement_count == 2 * 7 * 10
    with torch.no_grad():
        layer(z)
    assert be.measurement_count == 3 * 7 * 10


def test_network_gradients_through_two_layers_match_autograd():
    be = backend(seed=4)
    afd = AFDConfig(delta_i_a=1e-9, calibrate=False)
    gen = torch.Generator().manual_seed(0)
    lin1, lin2 = nn.Linear(4, 12).double(), nn.Linear(12, 3).double()
    act = MTJActivation(12, be, "h", afd, F64)
    x = torch.randn(50, 4, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (50,), generator=gen)

    def grads(activation):
        lin1.zero_grad()
        lin2.zero_grad()
        nn.functional.cross_entropy(lin2(activation(lin1(x))), y).backward()
        return torch.cat([p.grad.flatten() for p in (*lin1.parameters(), *lin2.parameters())])

    p = be.params
    pop = be.population("h")
    exact = grads(lambda z: mtj.voltage(z * p.current_scale_a, pop) / p.voltage_scale_v)
    measured = grads(act)
    assert nn.functional.cosine_similarity(exact, measured, dim=0) > 1 - 1e-8


def test_gradcheck_experiment_meets_the_threshold_and_shows_both_regimes(tmp_path):
    exp = get("afd-gradcheck")
    result = exp.run(exp.default_config(), RunContext(seed=0, device=torch.device("cpu"), out_dir=tmp_path))
    assert result.metrics["cosine_best"] >= 0.999
    device = [r["cosine_device"] for r in result.history]
    best = device.index(max(device))
    assert 0 < best < len(device) - 1  # optimum inside the sweep: noise left, truncation right
    assert device[0] < 0.5  # smallest dI: read noise swamps the difference
    assert device[-1] < 0.99  # largest dI: truncation error
    ideal = [r["cosine_ideal"] for r in result.history]
    assert ideal[0] > 1 - 1e-10


def test_calibrated_slopes_stay_unbiased_far_outside_the_usual_range():
    be = backend(variability=0.1, noise=1e-4, twin_mismatch=0.02, seed=0)
    layer = MTJActivation(64, be, "h", AFDConfig(), F64)
    for value in (-40.0, -20.0, 0.0, 12.0, 40.0):
        z = torch.full((200, 64), value, dtype=F64)
        measured = input_grads(layer, z, torch.ones_like(z)).mean(0)
        exact = formula_grads(be, "h", z[:1], torch.ones_like(z[:1]))[0]
        bias = ((measured - exact) / exact).abs()
        assert bias.median() < 0.06, value
        assert (measured * exact > 0).all(), value


def test_mixed_precision_layer_and_backend_work_together():
    be = backend(seed=1)  # float64 devices
    layer = MTJActivation(8, be, "h", AFDConfig())  # float32 calibration grid
    z = torch.randn(4, 8, requires_grad=True)
    layer(z).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_a_step_below_the_current_resolution_is_refused():
    import re

    import pytest

    from spinlearn.errors import ConfigError

    with pytest.raises(
        ConfigError, match=re.escape("afd.delta_i_a = 1e-15: below the torch.float32 resolution")
    ):
        MTJActivation(4, backend(), "h", AFDConfig(delta_i_a=1e-15), torch.float32)
