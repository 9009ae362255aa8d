"""The fused DW-SGLD kernel (spinlearn/learning/sgld_fused.py) against the eager passes it replaces."""

import math

import numpy
import pytest
import torch

from spinlearn import _jit
from spinlearn.devices.domain_wall import DomainWall, DWParams
from spinlearn.hardware import dw_bank
from spinlearn.learning import sgld_fused
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
        DWLinear.from_weight(torch.zeros(8, 300), torch.zeros(8), device, 0.5, gen(seed)),
        DWLinear.from_weight(torch.zeros(5, 120), torch.zeros(5), device, 0.5, gen(seed + 1)),
        DWLinear.from_weight(torch.zeros(2, 40), None, device, 0.5, gen(seed + 2)),
    ]
    u = layers[1].synapses.u
    u[0, :, :60] = HALF - torch.rand(5, 60, generator=gen(9)) * 30e-9  # at the top end
    u[0, :, 60:] = -HALF + torch.rand(5, 60, generator=gen(10)) * 30e-9  # at the bottom end
    return layers


def _train(fused, params, config, grad_scale=1.0, steps=6, nan_in=None, zero_layer=None, skip_middle_every=0):
    """Train :func:`_crossbars` on fixed random gradients. ``nan_in``: (layer, "weight" or "bias")
    whose first gradient row is NaN; ``zero_layer``: a layer whose gradients are 0;
    ``skip_middle_every``: the middle crossbar gets no gradient every that many steps."""
    layers = _crossbars(params)
    opt = DWSGLD([p for layer in layers for p in layer.parameters()], 1e-3, config, 1000, gen(3), fused=fused)
    grads = gen(7)
    for step in range(steps):
        for k, layer in enumerate(layers[:2]):
            for name, p in layer.named_parameters():
                p.grad = torch.randn(p.shape, generator=grads) * grad_scale
                if nan_in == (k, name):
                    p.grad[0] = float("nan")
                if k == zero_layer:
                    p.grad.zero_()
                if k == 1 and skip_middle_every and step % skip_middle_every == 0:
                    p.grad = None
        opt.step()
    return layers, opt


def _both(monkeypatch, *args, **kwargs):
    """The same training fused and eager; asserts that the kernel ran in the first only."""
    calls = []
    kernel = sgld_fused.program_window
    monkeypatch.setattr(sgld_fused, "program_window", lambda *a: calls.append(1) or kernel(*a))
    fused = _train(True, *args, **kwargs)
    assert calls
    calls.clear()
    eager = _train(False, *args, **kwargs)
    assert not calls
    return fused, eager


def _assert_same(fused, eager, walls_atol=1e-6 * HALF):
    (layers_f, opt_f), (layers_e, opt_e) = fused, eager
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
def test_fused_update_moves_the_walls_as_the_eager_passes_do(monkeypatch, temperature):
    """Same seeds, same pool numbers: walls (near the ends too) agree to float rounding, and the
    pulses, hot weights and energy are the same."""
    config = SGLDConfig(temperature=temperature, bits=6)
    fused, eager = _both(monkeypatch, DWParams(), config)
    _assert_same(fused, eager)
    layers = fused[0]
    assert float(layers[1].synapses.u[0].abs().max()) > HALF - 20e-9  # walls were held at the ends
    assert torch.equal(layers[2].weight, _crossbars(DWParams())[2].weight)  # no gradient: untouched


def test_windows_rebalancing_and_a_crossbar_without_gradient_agree(monkeypatch):
    """Banks split into windows of 777 weights, 19 steps (rebalances every 8), the middle crossbar
    left without a gradient every third step."""
    monkeypatch.setattr(dw_bank, "CHUNK", 777)
    config = SGLDConfig(temperature=0.1, bits=6)
    fused, eager = _both(monkeypatch, DWParams(), config, steps=19, skip_middle_every=3)
    assert sum(len(bank.windows) for bank in fused[1]._banks[0][1]) > 3
    _assert_same(fused, eager)


def test_hot_weights_and_clamped_pairs_agree(monkeypatch):
    """Noisy drift pulses: pairs would go negative (clamped to 0) and weights run hot."""
    params = DWParams(diffusion_m2_per_s=2e-8)
    config = SGLDConfig(temperature=1e-3, bits=6)
    fused, eager = _both(monkeypatch, params, config, grad_scale=5.0)
    assert 0 < fused[1].hot_fraction < 1
    _assert_same(fused, eager)


def test_saturating_response_reads_back_through_the_device(monkeypatch):
    _assert_same(*_both(monkeypatch, DWParams(response="saturating"), SGLDConfig(temperature=0.1)))


@pytest.mark.parametrize("where", [(0, "weight"), (0, "bias")])
def test_a_nan_in_a_crossbar_gradient_sends_it_no_drift_in_either_path(monkeypatch, where):
    """A NaN in the weights' or only in the bias's gradient leaves the crossbar no finite
    quantisation step: both paths send code 0 (diffusion only), and nothing turns NaN."""
    config = SGLDConfig(temperature=0.1)
    fused, eager = _both(monkeypatch, DWParams(), config, nan_in=where)
    _assert_same(fused, eager)
    assert torch.isfinite(fused[0][0].weight).all() and torch.isfinite(fused[0][0].synapses.u).all()
    zero = _train(True, DWParams(), config, zero_layer=0)  # a zero gradient sends no drift either
    for lf, lz in zip(fused[0], zero[0], strict=True):
        assert torch.equal(lf.synapses.u, lz.synapses.u)
    assert fused[1].pulses == zero[1].pulses


def _drift_pulses(fused: bool, codes: torch.Tensor, bits: int, lr: float) -> int:
    """Pulses of one update at temperature 0 whose quantisation step makes ``-codes`` the codes."""
    layer = DWLinear.from_weight(torch.zeros(1, codes.numel()), None, DomainWall(DWParams()), 64.0, gen())
    opt = DWSGLD(layer.parameters(), lr, SGLDConfig(temperature=0.0, bits=bits), generator=gen(), fused=fused)
    layer.weight.grad = codes.view(1, -1).clone()
    opt.step()
    return opt.pulses


def test_codes_round_half_to_even_in_both_paths():
    """lr 0.5 and a peak of 31 at 6 bits make the step 0.5 and the codes -grad exactly: the ties
    2.5, 0.5, 1.5, -3.5 round to -2, 0, -2, 4 (half up would give 34 pulses, not 39)."""
    grads = torch.tensor([31.0, 2.5, 0.5, 1.5, -3.5])
    assert _drift_pulses(True, grads, 6, 0.5) == _drift_pulses(False, grads, 6, 0.5) == 39


def test_drift_pulse_counts_are_exact_at_16_bits():
    """Codes near 2^15 in 4096 weights: the count, past 2^24, stays exact."""
    codes = -(32767.0 - torch.arange(4096, dtype=torch.float32) % 7)
    exact = int(codes.abs().to(torch.int64).sum())
    assert exact > 1 << 24
    assert _drift_pulses(True, codes, 16, 2.0**-10) == _drift_pulses(False, codes, 16, 2.0**-10) == exact


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
    monkeypatch.setattr(sgld_fused, "_kernels", None)
    _train(True, DWParams(), SGLDConfig(temperature=0.1), steps=1)
    assert sgld_fused._kernels is not None


def test_chunked_kernel_equals_the_serial_one():
    """With more than one thread a large segment runs in chunks: the same walls, weights and counts."""
    if sgld_fused._kernels is None:
        sgld_fused._kernels = _jit.compile_cached(sgld_fused._compile)
    serial, chunked = sgld_fused._kernels[:2]
    size = 3 * sgld_fused.CHUNK + 123
    g = gen(5)
    grad = (torch.randn(size, generator=g) * 5e-3).numpy()
    walls = ((torch.rand(2, size, generator=g) - 0.5) * 2 * HALF).numpy()
    factors = (1 + 0.1 * torch.randn(2, size, generator=g)).abs().numpy()
    noise = torch.randn(size, generator=g).numpy()
    scalars = [-2000.0, 2e-10, 2e-19, 4e-19, 0.5, 16.0, 9.0, 0.0, HALF, 2e-8, 2.5e5]
    results = []
    for kernel in (serial, chunked):
        active, param = walls[0].copy(), numpy.zeros(size, numpy.float32)
        sums = kernel(grad, active, walls[1], *factors, noise, param, numpy.array(scalars, numpy.float32))
        results.append((active, param, sums))
    (a0, p0, s0), (a1, p1, s1) = results
    assert numpy.array_equal(a0, a1) and numpy.array_equal(p0, p1)
    assert s0 == s1 and s0[0] > 0 and s0[1] > 0 and s0[2] > 0


def test_numba_follows_torch_thread_count_in_every_thread():
    """numba keeps a thread count per Python thread, torch one per process: a worker thread that
    runs a kernel must set its own."""
    import threading

    import numba

    before = torch.get_num_threads()
    seen = {}

    def worker():
        _jit.follow_torch_threads()
        seen["numba"] = numba.get_num_threads()

    try:
        torch.set_num_threads(1)
        _jit.follow_torch_threads()
        assert numba.get_num_threads() == 1
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert seen["numba"] == 1
    finally:
        torch.set_num_threads(before)
        _jit.follow_torch_threads()


def _fused_and_eager(make_layers, steps: int, grad_seed: int) -> list:
    """``make_layers()`` trained ``steps`` steps on the same random gradients, fused and eager:
    ``[(layers, optimizer)] * 2`` for :func:`_assert_same`."""
    config = SGLDConfig(temperature=0.1, bits=6)
    runs = []
    for fused in (True, False):
        layers = make_layers()
        params = [p for layer in layers for p in layer.parameters()]
        opt = DWSGLD(params, 1e-3, config, 1000, gen(3), fused=fused)
        grads = gen(grad_seed)
        for _ in range(steps):
            for p in params:
                p.grad = torch.randn(p.shape, generator=grads)
            opt.step()
        runs.append((layers, opt))
    return runs


def test_more_tensors_than_a_group_in_one_window_agree(monkeypatch):
    """Twelve tensors in one window: the kernel takes them in calls of ``GROUP`` segments."""
    calls = []
    kernel = sgld_fused.program_window
    monkeypatch.setattr(sgld_fused, "program_window", lambda *a: calls.append(len(a[1])) or kernel(*a))
    device = DomainWall(DWParams())

    def layers():
        return [
            DWLinear.from_weight(torch.zeros(6, 20), torch.zeros(6), device, 0.5, gen(k)) for k in range(6)
        ]

    runs = _fused_and_eager(layers, steps=4, grad_seed=8)
    assert calls and calls[0] == 12 > sgld_fused.GROUP
    _assert_same(*runs)


def test_peaks_are_aminmax_peaks_with_nan_and_inf():
    g = gen(9)
    grads = [torch.randn(n, generator=g) for n in (5, 300, 1, 77, 64, 9, 12, 3, 1000, 2)]
    grads[1][17], grads[3][0], grads[4][5], grads[4][6] = (
        float("nan"),
        float("inf"),
        -float("inf"),
        float("nan"),
    )
    grads[8][999] = -50.0
    found = sgld_fused.peaks([t.numpy() for t in grads])
    for peak, grad in zip(found, grads, strict=True):
        low, high = torch.aminmax(grad)
        expected = max(-float(low), float(high))
        assert (math.isnan(peak) and math.isnan(expected)) if math.isnan(expected) else peak == expected
    assert math.isnan(found[1]) and found[3] == math.inf and math.isnan(found[4]) and found[8] == 50.0


def test_the_chunked_path_through_a_window_agrees(monkeypatch):
    """A segment above ``CHUNK`` weights with more than one numba thread runs in chunks (forced
    here, whatever the machine's thread count): the same walls as the eager passes."""
    monkeypatch.setattr(sgld_fused, "numba_threads", lambda: 2)
    device = DomainWall(DWParams())

    def layers():
        layer = DWLinear.from_weight(torch.zeros(8, 3000), torch.zeros(8), device, 0.5, gen(4))
        assert layer.weight.numel() > sgld_fused.CHUNK
        return [layer]

    _assert_same(*_fused_and_eager(layers, steps=3, grad_seed=6))


def test_a_strided_gradient_is_programmed_as_a_contiguous_one(monkeypatch):
    """A gradient that is a transposed view (not contiguous, and strided after reshape)."""
    config, device = SGLDConfig(temperature=0.1, bits=6), DomainWall(DWParams())
    runs = []
    for strided in (True, False):
        layer = DWLinear.from_weight(torch.zeros(8, 30), torch.zeros(8), device, 0.5, gen(4))
        opt = DWSGLD(list(layer.parameters()), 1e-3, config, 1000, gen(3))
        grad = torch.randn(30, 8, generator=gen(6))
        layer.weight.grad = grad.t() if strided else grad.t().contiguous()
        layer.bias.grad = torch.randn(16, generator=gen(7))[::2]  # a strided 1-d view
        opt.step()
        runs.append(layer.synapses.u.clone())
    assert torch.equal(runs[0], runs[1])
