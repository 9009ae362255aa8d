"""The fused AFD layer step (learning/afd_fused.py) against the reference composition it replaces.

Two layers built from identically seeded generators draw the same devices, calibration and noise
windows, so the fused layer (default) and the reference one (``fused=False``) must agree element
for element up to float32 rounding, which the 1/dI of the slope magnifies.
"""

import pytest
import torch

from spinlearn.devices import MTJ, MTJParams
from spinlearn.energy import Ledger
from spinlearn.errors import TrainingDiverged
from spinlearn.hardware import SimulatedBackend
from spinlearn.learning import AFDConfig
from spinlearn.nn import MTJActivation
from spinlearn.noise import GaussianPool

WIDTH = 40
CAL = AFDConfig(calibration_points=65, calibration_reads=2)


def layer(fused: bool, seed: int = 5, ledger: Ledger | None = None, dtype=torch.float32):
    backend = SimulatedBackend(MTJ(MTJParams(), 0.1), torch.Generator().manual_seed(seed), dtype=dtype)
    backend.ledger = ledger
    return MTJActivation(WIDTH, backend, "h", CAL, dtype=dtype, fused=fused)


def forward_backward(act: MTJActivation, z: torch.Tensor):
    z = z.clone().requires_grad_(True)
    out = act(z)
    out.backward(torch.linspace(-1, 1, out.numel()).view(out.shape))
    return out.detach(), z.grad


def slope_noise(act: MTJActivation) -> float:
    """The rms read-noise spread of one measured slope dy/dz (two reads of rms sigma_V)."""
    sigma = act.backend.params.read_noise_v
    return 2**0.5 * sigma / act.afd.delta_i_a * act.i_scale_a / act.v_scale_v


@pytest.mark.parametrize("shape", [(64, WIDTH), (3, 5, WIDTH), (WIDTH,)])
def test_fused_step_equals_the_reference_composition(shape):
    z = 3 * torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    fused, reference = layer(True), layer(False)
    for _ in range(3):  # successive steps draw the same noise windows too
        y_f, g_f = forward_backward(fused, z)
        y_r, g_r = forward_backward(reference, z)
        assert fused._fused_step is not None and reference._fused_step is None
        # float32 grid positions round differently (~1e-6 V): far below the read noise (1e-4 V)
        assert (y_f - y_r).abs().max() * fused.v_scale_v < 0.05 * fused.backend.params.read_noise_v
        # float32 rounding of V (~5e-7 V) over dI = 2e-6 A: far below the read-noise spread
        assert (g_f - g_r).abs().max() < 1e-3 * slope_noise(fused)
    assert fused.backend.measurement_count == reference.backend.measurement_count


def test_fused_step_reads_the_noise():
    z = torch.zeros(400, WIDTH, requires_grad=True)
    act = layer(True)
    y = act(z)
    y.sum().backward()  # z.grad is the measured slope itself
    # every row sees the same currents: the spread over rows is the read noise alone
    assert y.detach().std(0).mean().item() * act.v_scale_v == pytest.approx(
        act.backend.params.read_noise_v, rel=0.1
    )
    assert z.grad.std(0).mean().item() == pytest.approx(slope_noise(act), rel=0.1)


def test_currents_off_the_grid_take_the_reference_path():
    z = torch.randn(8, WIDTH, generator=torch.Generator().manual_seed(2))
    z[3, 7] = 500.0  # far beyond the table's +-32 I_s: solved exactly by the reference path
    fused, reference = layer(True), layer(False)
    y_f, g_f = forward_backward(fused, z)
    reference.backend.noise_window(2 * z.numel())  # the window the fused pass drew before giving up
    y_r, g_r = forward_backward(reference, z)
    assert torch.equal(y_f, y_r) and torch.equal(g_f, g_r)
    assert fused.backend.measurement_count == reference.backend.measurement_count


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_still_raises(bad):
    z = torch.zeros(4, WIDTH)
    z[1, 2] = bad
    with pytest.raises(TrainingDiverged, match="non-finite input current"):
        layer(True)(z.requires_grad_())


def test_fused_reads_book_the_same_energy():
    z = 2 * torch.randn(32, WIDTH, generator=torch.Generator().manual_seed(3))
    books = []
    for fused in (True, False):
        ledger = Ledger()
        act = layer(fused, ledger=ledger)
        with ledger.in_phase("train"):
            forward_backward(act, z)
        books.append((dict(ledger.counts["train"]), dict(ledger.joules["train"])))
    (counts_f, joules_f), (counts_r, joules_r) = books
    assert counts_f == counts_r and counts_f["mtj_read"] == 2 * z.numel()
    for category, joules in joules_r.items():
        assert joules_f[category] == pytest.approx(joules, rel=1e-5)


def test_fused_step_only_where_it_applies():
    z = torch.randn(4, WIDTH).requires_grad_()
    exact = layer(True, dtype=torch.float64)  # float64 backends read exactly: no table to fuse
    exact(z.double())
    assert exact._fused_step is None
    evaluation = layer(True)
    with torch.no_grad():
        evaluation(z)
    assert evaluation._fused_step is None


def test_pool_offsets_drawn_ahead_are_uniform_and_reproducible():
    def windows(seed, count=4000, n=1000):
        pool = GaussianPool(torch.Generator().manual_seed(seed), offsets_per_draw=256)
        pool.take((n,))
        return [pool._offset(n) for _ in range(count)], len(pool._pool) - n

    starts, last = windows(0)
    assert windows(0)[0] == starts and windows(1)[0] != starts
    offsets = torch.tensor(starts, dtype=torch.float64) / last
    assert 0 <= offsets.min() and offsets.max() <= 1
    assert offsets.mean().item() == pytest.approx(0.5, abs=0.02)  # 4000 uniforms: sd 0.0046
    assert offsets.std().item() == pytest.approx(12**-0.5, abs=0.02)
    with pytest.raises(ValueError, match="offsets_per_draw"):
        GaussianPool(torch.Generator(), offsets_per_draw=0)


def test_kernel_compiles_without_a_cache_directory(monkeypatch):
    from spinlearn.learning import afd_fused

    compile_ = afd_fused._compile

    def no_cache_dir(cache=True):
        if cache:  # what numba raises where no cache directory is writable
            raise RuntimeError("cannot cache function 'afd_layer': no locator available")
        return compile_(cache=False)

    monkeypatch.setattr(afd_fused, "_compile", no_cache_dir)
    monkeypatch.setattr(afd_fused, "_kernel", None)
    z = torch.randn(6, WIDTH, generator=torch.Generator().manual_seed(4))
    fused = layer(True)
    g_f = forward_backward(fused, z)[1]
    g_r = forward_backward(layer(False), z)[1]
    assert afd_fused._kernel is not None and fused._fused_step is not None
    assert (g_f - g_r).abs().max() < 1e-3 * slope_noise(fused)
