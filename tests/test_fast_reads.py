"""The fast simulated reads (float32 default): tabulated I-V curves and pooled read noise."""

import pytest
import torch

from spinlearn.devices import MTJ, MTJParams, mtj
from spinlearn.hardware import SimulatedBackend
from spinlearn.learning import AFDConfig
from spinlearn.nn import MTJActivation

F64 = torch.float64
DI = 2e-6


def pair(n=64, spread=0.2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    neurons = MTJ(MTJParams(), spread).sample(n, gen, F64)
    return neurons, mtj.perturb(neurons, 0.02, 1e-4, gen)


def currents(neurons, rows, half, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = (2 * torch.rand(rows, neurons.size, generator=gen, dtype=F64) - 1) * half
    return neurons.i0_a + x * neurons.is_a


def test_analytic_slope_is_the_derivative_of_the_newton_solution():
    neurons, _ = pair()
    current = currents(neurons, 50, 40.0).requires_grad_(True)
    (auto,) = torch.autograd.grad(mtj.voltage(current, neurons).sum(), current)
    assert torch.allclose(mtj.slope(current.detach(), neurons), auto, rtol=1e-10, atol=0)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_table_error_is_far_below_the_read_noise(dtype):
    neurons, twins = pair()
    table = mtj.CurveTable((neurons, twins), (0.0, DI), dtype)
    current = currents(neurons, 2000, mtj.TABLE_HALF_RANGE * 0.999)
    v = table(current.to(dtype)).double()
    exact = torch.stack((mtj.voltage(current, neurons), mtj.voltage(current + DI, twins)))
    assert (v - exact).abs().max() < 3e-6  # the bound in CurveTable's doc; read noise is 1e-4 V


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_table_twin_difference_error_is_below_the_afd_truncation(dtype):
    # The measured slope is (V_twin(I + dI) - V(I)) / dI: compare its table error with the AFD
    # truncation error |f''| dI / 2 of the same devices, point by point in the transition.
    neurons, twins = pair()
    table = mtj.CurveTable((neurons, twins), (0.0, DI), dtype)
    current = currents(neurons, 1000, 4.0)
    v = table(current.to(dtype)).double()
    exact = mtj.voltage(current + DI, twins) - mtj.voltage(current, neurons)
    error = ((v[1] - v[0]) - exact).abs() / DI
    step = 1e-3 * neurons.is_a
    curvature = (mtj.slope(current + step, twins) - mtj.slope(current - step, twins)) / (2 * step)
    truncation = curvature.abs() * DI / 2
    assert error.max() < 2.0  # ohm; slopes are ~1e3 ohm, their read-noise spread ~70 ohm
    assert error.median() < 0.1 * truncation.median()


def test_off_grid_and_non_finite_currents_are_solved_exactly():
    neurons, twins = pair(n=8)
    table = mtj.CurveTable((neurons, twins), (0.0, DI), F64)
    x = torch.tensor([[-40.0], [0.3], [31.0], [33.0], [1e4]], dtype=F64)
    current = neurons.i0_a + x * neurons.is_a
    v = table(current)
    assert torch.allclose(v[0], mtj.voltage(current, neurons), rtol=0, atol=3e-6)
    assert torch.equal(v[0][[0, 3, 4]], mtj.voltage(current, neurons)[[0, 3, 4]])  # Newton
    assert torch.equal(v[1][[0, 3, 4]], mtj.voltage(current + DI, twins)[[0, 3, 4]])
    current[1, 2] = float("nan")
    assert table(current)[:, 1, 2].isnan().all()


def fast_backend(noise=1e-4, seed=0, n=256):
    gen = torch.Generator().manual_seed(seed)
    backend = SimulatedBackend(MTJ(MTJParams(read_noise_v=noise), 0.1), gen)
    backend.allocate("h", n)
    return backend


def test_float32_backends_are_fast_and_float64_ones_exact():
    assert fast_backend().fast
    assert not SimulatedBackend(MTJ(), torch.Generator(), dtype=F64).fast


def test_pooled_read_noise_statistics():
    backend = fast_backend()
    current = torch.full((64, 256), 1e-4)
    clean = mtj.voltage(current.double(), backend.population("h")).float()
    reads = torch.stack([backend.read("h", current) for _ in range(200)])  # (reads, 64, 256)
    noise = (reads - clean).double() / 1e-4
    assert abs(noise.mean().item()) < 0.01
    assert noise.std().item() == pytest.approx(1.0, rel=0.02)
    assert noise.abs().max() > 4  # Gaussian tails, not a small recycled set
    # within a read: neighbouring elements uncorrelated
    within = (noise[..., 1:] * noise[..., :-1]).mean().item()
    # a fixed element in successive reads: uncorrelated (windows start at random offsets)
    successive = (noise[1:] * noise[:-1]).mean(0)
    bound = 5 / (noise[..., 1:].numel() ** 0.5)
    assert abs(within) < bound
    assert abs(successive.mean().item()) < 5 / (successive.numel() * 199) ** 0.5
    assert (successive.abs() < 5 / 199**0.5).float().mean() > 0.999


def test_fast_reads_are_reproducible_per_seed():
    current = torch.randn(16, 256) * 1e-4
    first = fast_backend(seed=3).read_pair("h", current, DI)
    again = fast_backend(seed=3).read_pair("h", current, DI)
    other = fast_backend(seed=4).read_pair("h", current, DI)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])


def test_fast_and_exact_layers_give_the_same_gradients_without_noise():
    grads = {}
    z = 2 * torch.randn(32, 48, generator=torch.Generator().manual_seed(2))
    for fast in (True, False):
        gen = torch.Generator().manual_seed(7)
        backend = SimulatedBackend(MTJ(MTJParams(read_noise_v=0.0), 0.1), gen, fast=fast)
        layer = MTJActivation(48, backend, "h", AFDConfig())
        zz = z.clone().requires_grad_(True)
        out = layer(zz)
        out.sum().backward()
        grads[fast] = (out.detach(), zz.grad)
        assert backend.measurement_count == 2 * 257 * 48 * 16 + 2 * z.numel()
    assert torch.allclose(grads[True][0], grads[False][0], rtol=0, atol=1e-4)
    assert torch.allclose(grads[True][1], grads[False][1], rtol=0, atol=2e-3)
