"""Domain-wall synapses and DW-SGLD (issue 5): device statistics, layers, optimizer, data, experiments."""

import math

import pytest
import torch
from cli_helpers import run_summary, spinlearn
from data_helpers import tiny_cifar
from torch import nn

from spinlearn import data
from spinlearn.devices.domain_wall import DomainWall, DWParams, Pulse, apply_trains, conductance
from spinlearn.errors import ConfigError, DataError
from spinlearn.hardware import dw_bank
from spinlearn.hardware.dw_bank import SynapseBank
from spinlearn.learning.posterior import PosteriorSamples
from spinlearn.learning.sgld import DWSGLD, SGLD, SGLDConfig, quantise
from spinlearn.metrics import confidence_gap, ece, ece_gap, nll
from spinlearn.nn.dw import DWLinear, Layers
from spinlearn.nn.resnet import mlp, resnet18
from spinlearn.noise import GaussianPool

P = DWParams()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


DEVICE = DomainWall(P)


def row_layer(n, kind=DEVICE, w_max=1.0, seed=0, initial=None):
    """A 1 x n DWLinear: n independent weights, each a pair of devices."""
    initial = torch.zeros(1, n) if initial is None else initial
    return DWLinear.from_weight(initial, None, kind, w_max, gen(seed))


# --- device ------------------------------------------------------------------------------------


def test_one_pulse_moves_the_wall_by_its_drift_and_diffusion():
    n = 200_000
    pulse = Pulse(current_a=3 * P.threshold_a, width_s=2e-9)
    mu, var = pulse.mean_step_m(P), pulse.step_variance_m2(P)
    assert mu == pytest.approx(P.velocity_m_per_s * 2 * 2e-9)
    assert var == pytest.approx(2 * P.diffusion_m2_per_s * 2e-9)
    z = torch.zeros(n)
    pop = DomainWall(DWParams(variability=0.0)).sample((n,), gen())
    ones = torch.ones(n)
    step = apply_trains(
        z.clone(), pop, P, ones.clone(), ones.clone(), torch.randn(n, generator=gen(1)), mu, var**0.5
    )
    assert float(step.mean()) == pytest.approx(mu, rel=0.02)
    assert float(step.var()) == pytest.approx(var, rel=0.02)


def test_below_depinning_the_wall_does_not_move_and_pulse_energy_is_joule():
    weak = Pulse(current_a=0.9 * P.threshold_a, width_s=1e-9)
    assert weak.mean_step_m(P) == 0 and weak.step_variance_m2(P) == 0
    assert weak.energy_j(P) == pytest.approx((0.9e-3) ** 2 * 500 * 1e-9)
    strong = Pulse.for_mean_step(5e-9, overdrive=2.0, params=P)
    assert strong.mean_step_m(P) == pytest.approx(5e-9)
    assert Pulse.for_variance(4e-18, 0.2, P).step_variance_m2(P) == pytest.approx(4e-18)


def test_steps_shrink_near_the_ends_and_walls_stay_on_the_track():
    n, half = 10_000, P.track_length_m / 2
    pop = DomainWall(DWParams(variability=0.0)).sample((n,), gen())
    zeros = torch.zeros(n)

    def move(z, drift):  # a deterministic 10 nm push (drift +1) or pull (drift -1)
        return apply_trains(
            torch.full((n,), z), pop, P, torch.full((n,), drift), zeros.clone(), zeros, 10e-9, 0.0
        )

    assert torch.allclose(move(0.0, 1.0), torch.full((n,), 10e-9))
    near = move(half - 5e-9, 1.0) - (half - 5e-9)
    assert torch.allclose(near, torch.full((n,), 10e-9 * 5 / 20))  # held by the edge: 5 nm of 20 nm room
    assert torch.allclose(move(-half, 1.0), torch.full((n,), -half + 10e-9))  # leaving an end: free
    assert torch.allclose(move(-half + 1e-9, -1.0), torch.full((n,), -half + 0.5e-9))
    wild = apply_trains(
        (torch.rand(n, generator=gen()) - 0.5) * 2 * half,
        pop,
        P,
        zeros.clone(),
        torch.ones(n),
        torch.randn(n, generator=gen()),
        0.0,
        3e-7,
    )
    assert float(wild.min()) >= -half and float(wild.max()) <= half


def test_walls_far_from_the_ends_move_as_with_the_full_edge_computation():
    """apply_trains skips the edge factors when no wall is within reach of an end: the walls far
    from the ends move the same whether or not another wall forces the full computation."""
    n, half = 20_000, P.track_length_m / 2
    pop = DomainWall(DWParams(variability=0.1)).sample((n,), gen())
    far = (torch.rand(n, generator=gen(2)) - 0.5) * half  # within +/- L/4
    drift, noise = torch.randn(n, generator=gen(3)), torch.randn(n, generator=gen(4))
    variance = torch.rand(n, generator=gen(5))

    def move(z):
        return apply_trains(z.clone(), pop, P, drift.clone(), variance.clone(), noise, 2e-9, 1e-9)

    fast = move(far)
    held = far.clone()
    held[0] = half - 1e-9  # one wall at an end: every wall takes the edge computation
    full = move(held)
    assert not torch.equal(fast, far)
    assert torch.allclose(fast[1:], full[1:], rtol=0, atol=1e-13)  # float32 rounding of ~1e-7 m
    assert float(full[0]) <= half


def test_conductance_spans_the_range_for_both_responses_and_variability_spreads_devices():
    x = torch.linspace(-P.track_length_m / 2, P.track_length_m / 2, 101)
    for response in ("linear", "saturating"):
        g = conductance(x, DWParams(response=response))
        assert float(g[0]) == pytest.approx(P.g_min_s) and float(g[-1]) == pytest.approx(P.g_max_s)
        assert bool((g.diff() > 0).all())
    pop = DomainWall(DWParams(variability=0.2)).sample((50_000,), gen())
    assert float(pop.velocity.std()) == pytest.approx(0.2, rel=0.05)
    assert float(pop.diffusion.mean()) == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ConfigError, match="g_max_s"):
        DWParams(g_min_s=1e-4, g_max_s=5e-5)


# --- layers ------------------------------------------------------------------------------------


def test_dw_layers_start_from_the_same_weights_as_their_float_twins():
    x = torch.randn(4, 3, 12, 12, generator=gen())
    float_net = resnet18(Layers(None, gen(5)), in_channels=3, width=0.125).eval()
    dw_net = resnet18(Layers(DomainWall(P), gen(5), gen(6)), in_channels=3, width=0.125).eval()
    assert torch.allclose(float_net(x), dw_net(x), atol=1e-4)
    saturating = DomainWall(DWParams(response="saturating"))
    w = (torch.rand(3, 50, generator=gen()) - 0.5) * 1.5
    layer = DWLinear.from_weight(w, None, saturating, 1.0, gen())
    assert torch.allclose(layer.weight, w, atol=1e-5)


def test_resnet18_has_the_standard_parameter_count():
    net = resnet18(Layers(None, gen()), num_classes=10, in_channels=3, width=1.0)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962


def test_weights_change_only_through_the_devices():
    layer = row_layer(1000, initial=torch.full((1, 1000), 0.1))
    before = layer.weight.detach().clone()
    layer.weight.grad = torch.ones_like(layer.weight)
    torch.optim.SGD(layer.parameters(), lr=1.0).step()  # arithmetic on the parameter ...
    layer.refresh()  # ... is overwritten by what the devices hold
    assert torch.equal(layer.weight, before)
    opt = DWSGLD(layer.parameters(), 1e-3, SGLDConfig(temperature=0.0), generator=gen())
    layer.weight.grad = torch.zeros_like(layer.weight)
    opt.step()
    assert torch.equal(layer.weight, before) and opt.pulses == 0


@pytest.mark.parametrize(
    "scratch, kernel",
    [(None, True), (None, False), (tuple(torch.full((3, 12_000), float("nan")).unbind()), False)],
)
def test_rebalancing_exchanges_the_devices_exactly_where_the_passive_one_is_nearer_the_middle(
    scratch, kernel, monkeypatch
):
    """The numba pass and the eager passes (no numba, or off the CPU) alike."""
    monkeypatch.setattr(dw_bank._jit, "available", lambda: kernel)
    layer = row_layer(10_000, DomainWall(DWParams(variability=0.2)))
    syn = layer.synapses
    syn.u.copy_((torch.rand(syn.u.shape, generator=gen(1)) - 0.5) * P.track_length_m)
    before = {name: getattr(syn, name).clone() for name in ("u", "velocity", "diffusion", "plus_active")}
    swap = before["u"][1].abs() < before["u"][0].abs()
    SynapseBank([layer.weight]).rebalance(scratch)
    for name in ("u", "velocity", "diffusion"):
        old, new = before[name], getattr(syn, name)
        assert torch.equal(new[0], torch.where(swap, old[1], old[0]))  # exact: no rounding
        assert torch.equal(new[1], torch.where(swap, old[0], old[1]))
    assert torch.equal(syn.plus_active, before["plus_active"] ^ swap)
    assert 0.3 < float(swap.float().mean()) < 0.7


def test_programming_keeps_the_pairs_common_mode_centred():
    layer = row_layer(5000)
    opt = DWSGLD(layer.parameters(), 1e-2, SGLDConfig(temperature=0.0, bits=8), generator=gen())
    for _ in range(60):  # a steady push up: only one device per pair moves, in turns
        layer.weight.grad = -torch.ones_like(layer.weight)
        opt.step()
    z_plus, z_minus = layer.synapses.offsets()
    common = (z_plus + z_minus).abs()  # 0: symmetric about the middle
    assert float(layer.weight.detach().mean()) == pytest.approx(60 * 1e-2, rel=0.05)
    assert float(common.max()) < 0.1 * P.track_length_m


def _two_layers(seed=0):
    """Two crossbars of 3000 and 700 weights with fixed gradients, and a third without one."""
    layers = [row_layer(n, w_max=0.5, seed=seed + i) for i, n in enumerate((3000, 700, 50))]
    g = gen(7)
    for layer in layers[:2]:
        layer.weight.grad = torch.randn(layer.weight.shape, generator=g)
    return layers


@pytest.mark.parametrize("chunk", [1000, 256])
def test_banked_and_windowed_updates_send_the_same_pulses_as_one_bank(monkeypatch, chunk):
    """Pulse counts do not depend on how tensors are packed into banks and windows; a tensor
    without a gradient is not touched; every crossbar reads back what its devices hold."""
    config = SGLDConfig(temperature=1e-4, bits=4)
    counts, default = [], dw_bank.CHUNK
    for size in (default, chunk):
        monkeypatch.setattr(dw_bank, "CHUNK", size)
        layers = _two_layers()
        still = layers[2].weight.detach().clone()
        opt = DWSGLD([p for layer in layers for p in layer.parameters()], 1e-3, config, generator=gen())
        for _ in range(3):
            opt.step()
        banks = opt._banks[0][1]
        windows = sum(len(b.windows) for b in banks)
        assert (len(banks), windows) == (1, 1) if size == default else len(banks) > 1 and windows > 3
        counts.append((opt.pulses, opt.hot_fraction))
        assert torch.equal(layers[2].weight, still)
        for layer in layers:
            assert torch.equal(layer.weight.detach(), layer.synapses.weight())
    assert counts[0] == counts[1] and counts[0][0] > 0 and 0 < counts[0][1] < 1


def test_a_bias_is_a_column_of_its_crossbar_with_the_weights_quantisation_step():
    layer = DWLinear.from_weight(torch.zeros(4, 300), torch.zeros(4), DEVICE, 0.5, gen())
    x = torch.randn(8, 300, generator=gen(1))
    assert torch.allclose(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    assert layer.weight.crossbar is layer.bias.crossbar
    opt = DWSGLD(layer.parameters(), 1e-2, SGLDConfig(temperature=0.0, bits=6), generator=gen())
    layer.weight.grad = torch.ones_like(layer.weight)
    layer.bias.grad = torch.full_like(layer.bias, 1e-3)  # a code of 1e-3 * 31: rounds to 0
    opt.step()
    assert torch.equal(layer.bias.detach(), torch.zeros(4))  # alone, it would have its own step
    assert float(layer.weight.detach().mean()) == pytest.approx(-1e-2, rel=0.05)
    assert opt.pulses == 4 * 300 * 31


def test_a_bank_follows_buffers_that_were_replaced():
    layer = row_layer(500, w_max=0.5)
    opt = DWSGLD(layer.parameters(), 1e-3, SGLDConfig(temperature=1e-4), generator=gen())
    layer.weight.grad = torch.ones_like(layer.weight)
    opt.step()
    for name in ("u", "velocity", "diffusion"):  # what model.to(device) does
        setattr(layer.synapses, name, getattr(layer.synapses, name).clone())
    before = layer.weight.detach().clone()
    opt.step()
    assert float((layer.weight.detach() - before).mean()) < 0  # the step went to the new buffers
    assert torch.equal(layer.weight.detach(), layer.synapses.weight())


# --- the optimizer -----------------------------------------------------------------------------


def test_quantise_sends_the_largest_drift_exactly_and_rounds_the_rest():
    drift = torch.tensor([0.9, -0.3, 0.04, 0.0])
    codes, delta = quantise(drift, bits=3)  # levels -3..3
    assert delta == pytest.approx(0.3)
    assert codes.tolist() == [3.0, -1.0, 0.0, 0.0]
    codes2, _ = quantise(drift, bits=2)
    assert set(codes2.tolist()) <= {-1.0, 0.0, 1.0}
    assert quantise(torch.zeros(5), 6)[1] == 0.0


@pytest.mark.parametrize("variability", [0.0, 0.1])
def test_one_update_has_the_target_drift_and_langevin_variance(variability):
    """Over 1e5 devices: mean = -lr * grad and variance = 2 lr T, within 5 %."""
    n, lr, temperature = 100_000, 1e-3, 0.01
    layer = row_layer(n, DomainWall(DWParams(variability=variability)), w_max=0.5)
    before = layer.weight.detach().clone()
    opt = DWSGLD(layer.parameters(), lr, SGLDConfig(temperature=temperature, bits=6), generator=gen(3))
    layer.weight.grad = torch.full_like(layer.weight, -2.0)
    opt.step()
    step = layer.weight.detach() - before
    assert float(step.mean()) == pytest.approx(2e-3, rel=0.05)
    assert float(step.var()) == pytest.approx(2 * lr * temperature, rel=0.05)
    assert opt.pulses > n * 31  # 31 drift pulses (6 bits, largest code) plus push-pull pairs


@pytest.mark.parametrize("bits", [6, 8])
def test_pulse_counts_are_exact_past_float32_integers(bits):
    """2^18 weights at the largest code but one: at 8 bits the count is an odd number past 2^24,
    which no float32 holds (the optimizer then sums in float64)."""
    n, top = 1 << 18, 2 ** (bits - 1) - 1
    codes = torch.full((n,), top, dtype=torch.int64)
    codes[1] = top - 1  # the largest drift sets the step, so the codes are sent exactly
    layer = row_layer(n, w_max=0.5)
    opt = DWSGLD(layer.parameters(), 1e-3, SGLDConfig(temperature=0.0, bits=bits), generator=gen())
    layer.weight.grad = -codes.to(torch.float32).view(1, n)
    opt.step()
    assert opt.pulses == int(codes.sum())


def test_stationary_variance_on_a_quadratic_potential_is_t_over_curvature():
    """U = c w^2 / 2: SGLD samples exp(-U/T), variance T / c (discretisation: / (1 - lr c / 2))."""
    n, c, lr, temperature = 100_000, 2.0, 0.01, 0.005
    layer = row_layer(n, w_max=1.0)
    opt = DWSGLD(layer.parameters(), lr, SGLDConfig(temperature=temperature, bits=8), generator=gen(4))
    for _ in range(400):  # 8 relaxation times 1 / (lr c)
        layer.weight.grad = c * layer.weight.detach()
        opt.step()
    expected = temperature / c / (1 - lr * c / 2)
    assert float(layer.weight.detach().var()) == pytest.approx(expected, rel=0.10)
    assert abs(float(layer.weight.detach().mean())) < 0.02 * math.sqrt(expected)


def test_pairs_top_up_the_drift_pulses_own_diffusion():
    n, lr, temperature = 50_000, 1e-3, 1e-3
    noisy = DWParams(diffusion_m2_per_s=2e-8)  # drift pulses diffuse by more than 2 lr T
    layer = row_layer(n, DomainWall(noisy), w_max=0.5)
    opt = DWSGLD(layer.parameters(), lr, SGLDConfig(temperature=temperature), generator=gen())
    layer.weight.grad = torch.full_like(layer.weight, -5.0)
    opt.step()
    assert opt.hot_fraction == 1.0  # reported, not hidden
    quiet = row_layer(n, DomainWall(DWParams(diffusion_m2_per_s=2e-10)), w_max=0.5)
    opt = DWSGLD(quiet.parameters(), lr, SGLDConfig(temperature=temperature), generator=gen())
    quiet.weight.grad = torch.full_like(quiet.weight, -5.0)
    opt.step()
    assert opt.hot_fraction == 0.0


def test_float_sgld_reference_and_digital_parameters_take_software_noise():
    w = nn.Parameter(torch.zeros(100_000))
    opt = SGLD([w], lr=1e-3, temperature=0.005, generator=gen())
    w.grad = torch.full_like(w, -1.0)
    opt.step()
    assert float(w.detach().mean()) == pytest.approx(1e-3, rel=0.05)
    assert float(w.detach().var()) == pytest.approx(1e-5, rel=0.03)
    bn = nn.BatchNorm1d(4)
    layer = row_layer(4)
    opt = DWSGLD([*bn.parameters(), *layer.parameters()], 1e-2, generator=gen())
    for p in (*bn.parameters(), *layer.parameters()):
        p.grad = torch.ones_like(p)
    opt.step()
    assert not torch.equal(bn.weight, torch.ones(4))


def test_pulses_are_booked_in_the_ledger():
    from spinlearn.energy import Ledger

    ledger = Ledger()
    layer = row_layer(1000)
    opt = DWSGLD(layer.parameters(), 1e-3, SGLDConfig(temperature=1.0), generator=gen(), ledger=ledger)
    with ledger.in_phase("train"):
        layer.weight.grad = torch.randn(1, 1000, generator=gen())
        opt.step()
    assert ledger.counts["train"]["dw_pulse"] == opt.pulses > 0
    assert ledger.joules["train"]["dw_pulse"] == pytest.approx(opt.pulse_energy_j)


def test_sgld_rejects_bad_settings():
    layer = row_layer(3)
    with pytest.raises(ValueError, match="lr"):
        DWSGLD(layer.parameters(), 0.0)
    with pytest.raises(ConfigError, match="bits"):
        SGLDConfig(bits=1)


# --- posterior, calibration, noise pool ------------------------------------------------------------


def test_posterior_prediction_is_the_mean_of_the_samples_softmax():
    net = nn.Linear(3, 4)
    x = torch.randn(10, 3, generator=gen())
    sampler = PosteriorSamples(burn_in=1, thin=2, keep=2)
    outputs = []
    for step in range(1, 8):
        with torch.no_grad():
            net.weight.add_(0.1)
        sampler.observe(net, step)
        if step in (5, 7):  # kept: steps 3, 5, 7 -> the last two
            outputs.append(torch.softmax(net(x), 1))
    assert len(sampler.states) == 2
    current = net.weight.detach().clone()
    assert torch.allclose(sampler.predict(net, x), (outputs[0] + outputs[1]) / 2, atol=1e-6)
    assert torch.equal(net.weight, current)


def test_posterior_samples_of_a_dw_network_hold_its_weights_not_its_walls():
    layer = DWLinear.from_weight(torch.tensor([[0.02] * 50, [0.0] * 50]), None, DEVICE, 1.0, gen())
    sampler = PosteriorSamples(burn_in=0, thin=1, keep=1)
    sampler.observe(layer, 1)
    assert set(sampler.states[0]) == {"weight"}
    with torch.no_grad():
        layer.weight.zero_()
    x = torch.ones(2, 50)
    expected = torch.softmax(torch.tensor([[1.0, 0.0]] * 2), 1)  # the sample's logits (1, 0)
    assert torch.allclose(sampler.predict(layer, x), expected, atol=1e-5)
    assert float(layer.weight.detach().abs().max()) == 0.0  # the current state is back


def test_ece_and_nll_on_hand_examples():
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 0, 0])
    # bin of 0.9: confidence 0.9, accuracy 0.5; bin of 0.6: confidence 0.6, accuracy 1.0
    assert ece(probs, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert nll(probs, labels) == pytest.approx(-(math.log(0.9) + math.log(0.1) + 2 * math.log(0.6)) / 4)
    # mean confidence 0.75, accuracy 0.75; all right at 0.6: underconfident by 0.4
    assert confidence_gap(probs, labels) == pytest.approx(0.0)
    assert confidence_gap(probs[2:], labels[2:]) == pytest.approx(-0.4)


def test_averaging_samples_never_raises_confidence():
    labels = torch.randint(0, 10, (2000,), generator=gen(3))
    logits = 3.0 * torch.nn.functional.one_hot(labels, 10) + torch.randn(2000, 10, generator=gen(4))
    for scale in (0.3, 4.0):  # soft (underconfident) and sharp (overconfident) samples
        samples = torch.softmax(scale * (logits + 1.5 * torch.randn(6, 2000, 10, generator=gen(5))), -1)
        single = [confidence_gap(p, labels) for p in samples]
        posterior = samples.mean(0)
        assert posterior.max(-1).values.mean() <= samples.max(-1).values.mean()  # Jensen
        gap = ece(posterior, labels) - sum(ece(p, labels) for p in samples) / len(samples)
        # this far from calibration, the binned ECE moves with the confidence gap
        if max(single) < 0:
            assert confidence_gap(posterior, labels) < min(single) and gap > 0
        else:
            assert min(single) > 0 and gap < 0


def test_gaussian_pool_windows_are_standard_normal_and_uncorrelated_between_requests():
    pool = GaussianPool(gen(), reuse=2)
    a, b = pool.take((200_000,)), pool.take((200_000,))
    for w in (a, b):
        assert abs(float(w.mean())) < 0.01 and float(w.std()) == pytest.approx(1.0, abs=0.01)
    assert abs(float(torch.corrcoef(torch.stack((a, b)))[0, 1])) < 0.01
    again = GaussianPool(gen(), reuse=2)
    assert torch.equal(again.take((200_000,)), a)  # reproducible per seed
    first = pool._pool
    for _ in range(80):  # 2 x 4 Mi numbers handed out: the pool is redrawn
        pool.take((200_000,))
    assert pool._pool is not first
    assert GaussianPool(gen(), exact=True).take((3, 2)).shape == (3, 2)


# --- data and experiments -----------------------------------------------------------------------


def test_cifar_batches_load_and_bad_files_are_data_errors(tmp_path):
    splits = data.cifar10(str(tiny_cifar(tmp_path / "c")))
    assert splits.x_train.shape[1:] == (3, 32, 32) and splits.x_test.shape[0] == 12
    assert splits.x_train.min() >= 0 and splits.x_train.max() < 1
    with pytest.raises(DataError, match=r"needs data\.dir"):
        data.cifar10(None)
    with pytest.raises(DataError, match="test_batch is missing"):
        (tmp_path / "c" / "test_batch").unlink()
        data.cifar10(str(tmp_path / "c"))
    (tmp_path / "c" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read CIFAR-10 batch"):
        data.cifar10(str(tmp_path / "c"))


def test_cifar_experiment_without_data_is_one_line_and_exit_2(tmp_path):
    out = spinlearn("run", "cifar10-dw-resnet18", "--out", str(tmp_path / "o"))
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "data.dir" in out.stderr


def test_cifar_resnet_path_runs_on_generated_batches(tmp_path):
    directory = tiny_cifar(tmp_path / "c")
    summary = run_summary(
        tmp_path / "o",
        "cifar10-dw-resnet18",
        *("--set", f"data.dir={directory}", "--set", "model.width=0.0625", "--set", "train.epochs=1"),
        *("--set", "train.batch_size=20", "--set", "posterior.samples=2", "--set", "compare.sgd=true"),
        *("--set", "ood.size=16", "--set", "ood.held_out=false"),  # the held-out path: test_dw_ood
    )
    m = summary["metrics"]
    assert 0 <= m["test_accuracy_mean"] <= 1 and m["pulses_mean"] > 0
    assert {
        "ece_single_mean",
        "ece_posterior_mean",
        "nll_posterior_mean",
        "accuracy_float_sgld_mean",
        "confidence_gap_single_mean",
        "confidence_gap_posterior_mean",
        "confidence_gap_float_sgld_single_mean",
        "confidence_gap_float_sgld_posterior_mean",
        "accuracy_sgd_mean",
        "ece_sgd_single_mean",
        "confidence_gap_sgd_posterior_mean",
        "brier_posterior_mean",
        "nll_sgd_mean",
        "ood_auroc_shapes_posterior_mean",
        "ood_auroc_rotated_sgd_mean",
        "ood_auroc_posterior_minus_sgd_mean",
    } <= set(m)
    assert (
        math.isfinite(m["ece_gap"]) and m["ece_gap_low"] <= m["ece_gap_high"]
    )  # 12 examples: a wide interval
    assert (tmp_path / "o" / "reliability.png").is_file()


def test_ece_gap_is_the_posterior_minus_single_difference_with_a_bootstrap_interval():
    g = gen(7)
    n = 4000
    labels = torch.randint(0, 10, (n,), generator=g)
    # overconfident samples that disagree: averaging them lowers the confidence towards the accuracy
    logits = torch.randn(4, n, 10, generator=g) * 6
    logits[:, torch.arange(n), labels] += 5
    samples = torch.softmax(logits, 2)
    gap, low, high = ece_gap(samples, labels, resamples=300, generator=gen(8))
    direct = ece(samples.mean(0), labels) - sum(ece(s, labels) for s in samples) / len(samples)
    assert gap == pytest.approx(direct, abs=1e-6)
    assert low < gap < high < 0  # clearly better calibrated on average
    same = samples[:1].expand(3, -1, -1)  # identical samples: no difference, no spread
    assert ece_gap(same, labels, resamples=50, generator=gen(9)) == pytest.approx((0.0, 0.0, 0.0), abs=1e-7)
    with pytest.raises(ValueError, match="resamples"):
        ece_gap(samples, labels, resamples=1)


def test_mlp_builder_rejects_bad_sizes():
    with pytest.raises(ValueError, match="layer sizes"):
        mlp([784], Layers(None, gen()))


def test_read_noise_of_a_pair_has_the_rms_of_two_device_reads():
    layer = row_layer(100_000, DomainWall(DWParams(read_noise=0.01)), w_max=0.5)
    noise = layer.synapses.read_noise()
    assert float(noise.std()) == pytest.approx(0.5 * 0.01 * math.sqrt(2), rel=0.02)
    assert row_layer(10).synapses.read_noise() is None


@pytest.mark.parametrize(
    ("setting", "message"),
    [("sweep.bits=[]", "sweep.bits is empty"), ("sweep.bits=[1]", "sweep.bits = (1,): must be >= 2")],
)
def test_bad_sweep_is_one_line_and_exit_2(tmp_path, setting, message):
    out = spinlearn("run", "dw-bits-sweep", "--set", setting, "--out", str(tmp_path / "o"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
