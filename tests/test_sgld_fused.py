"""The fused DW-SGLD kernel (spinlearn/learning/sgld_fused.py) against the eager passes it replaces."""

import pytest
import torch

from spinlearn.devices.domain_wall import DomainWall, DWParams
from spinlearn.learning import _jit, sgld_fused
from spinlearn.learning.sgld import DWSGLD, SGLDConfig
from spinlearn.nn.dw import DWLinear

HALF = DWParams().track_length_m / 2


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _crossbars(params: DWParams, seed: int = 0) -> list[DWLinear]:
    """Two crossbars (weights and bias sharing a quantisation step), one of them with walls
    within the edge length of an end, and a third layer that gets no gradient."""
    device = DomainWall(params)
    layers = [
        DWLinear(torch.zeros(8, 300), torch.zeros(8), device, 0.5, gen(seed)),
        DWLinear(torch.zeros(5, 120), torch.zeros(5), device, 0.5, gen(seed + 1)),
        DWLinear(torch.zeros(2, 40), None, device, 0.5, gen(seed + 2)),
    ]
    u = layers[1].synapses.u
    u[0, :, :60] = HALF - torch.rand(5, 60, generator=gen(9)) * 30e-9  # at the top end
    u[0, :, 60:] = -HALF + torch.rand(5, 60, generator=gen(10)) * 30e-9  # at the bottom end
    return layers


def _train(fused: bool, params: DWParams, config: SGLDConfig, grad_scale=1.0, steps=6, nan_layer=None):
    layers = _crossbars(params)
    opt = DWSGLD([p for layer in layers for p in layer.parameters()], 1e-3, config, 1000, gen(3), fused=fused)
    grads = gen(7)
    for _ in range(steps):
        for k, layer in enumerate(layers[:2]):
            for p in layer.parameters():
                p.grad = torch.randn(p.shape, generator=grads) * grad_scale
                if k == nan_layer:
                    p.grad[0] = float("nan")
        opt.step()
    return layers, opt


def _assert_same(fused, eager, walls_atol=1e-6 * HALF):
    (layers_f, opt_f), (layers_e, opt_e) = fused, eager
    assert opt_f._views and all(v.arrays is not None for v in opt_f._views.values())  # the kernel ran
    assert all(v.arrays is None for v in opt_e._views.values())
    for lf, le in zip(layers_f, layers_e, strict=True):
        moved = lf.synapses.u - le.synapses.u
        assert float(moved.abs().max()) <= walls_atol
        assert float((lf.synapses.u.abs()).max()) <= HALF
        assert torch.allclose(lf.weight, le.weight, rtol=0, atol=walls_atol / HALF)
        assert torch.equal(lf.weight.detach(), lf.synapses.weight())
    assert opt_f.pulses == opt_e.pulses > 0
    assert opt_f.hot_fraction == opt_e.hot_fraction
    assert opt_f.pulse_energy_j == pytest.approx(opt_e.pulse_energy_j, rel=1e-9)


@pytest.mark.parametrize("temperature", [0.1, 0.0])
def test_fused_update_moves_the_walls_as_the_eager_passes_do(temperature):
    """Same seeds, same pool numbers: walls (near the ends too) agree to float rounding, and the
    pulses, hot weights and energy are the same."""
    config = SGLDConfig(temperature=temperature, bits=6)
    fused, eager = (_train(f, DWParams(), config) for f in (True, False))
    _assert_same(fused, eager)
    layers = fused[0]
    assert float(layers[1].synapses.u[0].abs().max()) > HALF - 20e-9  # walls were held at the ends
    assert torch.equal(layers[2].weight, _crossbars(DWParams())[2].weight)  # no gradient: untouched


def test_hot_weights_and_clamped_pairs_agree():
    """Noisy drift pulses: pairs would go negative (clamped to 0) and weights run hot."""
    params = DWParams(diffusion_m2_per_s=2e-8)
    config = SGLDConfig(temperature=1e-3, bits=6)
    fused, eager = (_train(f, params, config, grad_scale=5.0) for f in (True, False))
    assert 0 < fused[1].hot_fraction < 1
    _assert_same(fused, eager)


def test_saturating_response_reads_back_through_the_device():
    params = DWParams(response="saturating")
    config = SGLDConfig(temperature=0.1)
    _assert_same(*(_train(f, params, config) for f in (True, False)))


def test_a_gradient_that_is_not_finite_sends_no_drift_in_either_path():
    """A NaN gradient leaves no finite quantisation step: both paths send code 0 (diffusion only)."""
    config = SGLDConfig(temperature=0.1)
    fused, eager = (_train(f, DWParams(), config, nan_layer=0) for f in (True, False))
    _assert_same(fused, eager)
    assert torch.isfinite(fused[0][0].weight).all()


def test_fused_applies_to_cpu_float32_only():
    assert sgld_fused.applies(torch.zeros(3))
    assert not sgld_fused.applies(torch.zeros(3, dtype=torch.float64))


def test_kernel_compiles_without_a_cache_directory(monkeypatch):
    """Where numba finds no writable cache directory it raises at decoration: compile uncached."""
    compile_ = sgld_fused._compile

    def no_cache_dir(cache=True):
        if cache:
            raise RuntimeError("cannot cache function: no locator available")
        return compile_(cache=False)

    monkeypatch.setattr(sgld_fused, "_compile", no_cache_dir)
    monkeypatch.setattr(sgld_fused, "_kernel", None)
    _train(True, DWParams(), SGLDConfig(temperature=0.1), steps=1)
    assert sgld_fused._kernel is not None


def test_numba_follows_torch_thread_count(monkeypatch):
    import numba

    before = torch.get_num_threads()
    monkeypatch.setattr(_jit, "_threads", 0)
    try:
        torch.set_num_threads(1)
        _jit.follow_torch_threads()
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        _jit.follow_torch_threads()
