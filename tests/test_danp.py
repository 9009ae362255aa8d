"""DANP / NP: the update against a per-sample loop of the formula, against backprop on average, the
decorrelation step, the noise sources, training on a toy problem, and the error paths."""

import math

import pytest
import torch
import torch.nn.functional as F

from spinlearn.devices.smtj_noise import AUTHORS_NOISE
from spinlearn.errors import ConfigError, TrainingDiverged
from spinlearn.learning.danp import (
    DANPConfig,
    DANPNetwork,
    accuracy,
    backprop_gradients,
    danp_step,
    make_optimizers,
)
from spinlearn.learning.danp_noise import NOISE_KINDS, NOISE_SOURCES, NoiseConfig

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class FixedNoise:
    """A noise source returning a given (2B, width) tensor, so a test knows every noise value."""

    def __init__(self, values: torch.Tensor) -> None:
        self.values, self.width = values, values.shape[1]

    def __call__(self, n_rows: int) -> torch.Tensor:
        assert n_rows == self.values.shape[0]
        return self.values


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a.flatten() @ b.flatten() / (a.norm() * b.norm()))


def flat_grads(net: DANPNetwork) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in net.forward_parameters()])


# --- the update, term by term ------------------------------------------------------------------


def loop_reference(net, x, y, noises, loss):
    """The rule written out per sample with plain tensors, from the module's parameters."""
    sizes, batch = net.sizes, x.shape[0]
    n_tot, slope = sum(sizes[1:]), net.config.negative_slope
    W = [w.detach() for w in net.weights]
    b = [v.detach() for v in net.biases]
    R = [net.decorrelation_matrix(i).detach() for i in range(len(W))]
    c = [
        net.decorrelation_bias[i].detach() if net.decorrelated else torch.zeros(sizes[i], dtype=F64)
        for i in range(len(W))
    ]

    def one_pass(xn, target, row):
        h, zs, acts = xn, [], []
        for i in range(len(W)):
            z = R[i] @ h + c[i]
            a = W[i] @ z + b[i] + noises[i][row]
            zs.append(z)
            acts.append(a)
            h = a if i == len(W) - 1 else torch.where(a > 0, a, slope * a)
        if loss == "mse":
            value = ((h - F.one_hot(target, sizes[-1]).to(F64)) ** 2).sum()
        else:
            value = torch.logsumexp(h, 0) - h[target]
        return zs, acts, value

    gW = [torch.zeros_like(w) for w in W]
    gb = [torch.zeros_like(v) for v in b]
    first_inputs = []
    for n in range(batch):
        z1, a1, l1 = one_pass(x[n], y[n], n)
        _, a2, l2 = one_pass(x[n], y[n], batch + n)
        first_inputs.append(z1)
        denominator = sum(((p - q) ** 2).sum() for p, q in zip(a1, a2, strict=True))
        if denominator == 0:
            continue
        s = (l1 - l2) * n_tot / denominator
        for i in range(len(W)):
            gW[i] += s * torch.outer(a1[i] - a2[i], z1[i])
            gb[i] += s * (a1[i] - a2[i])
    gR, gc = [], []
    for i in range(len(W)):
        cov = sum(torch.outer(z[i], z[i]) for z in first_inputs) / batch
        gR.append((cov * (1 - torch.eye(sizes[i], dtype=F64))) @ R[i])
        gc.append(sum(z[i] for z in first_inputs))
    return gW, gb, gR, gc


@pytest.mark.parametrize("variant", ["danp", "np"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_update_equals_the_per_sample_formula(variant, loss):
    sizes, batch = (3, 5, 4, 3), 6
    net = DANPNetwork(sizes, gen(0), DANPConfig(variant=variant, loss=loss), dtype=F64)
    g = gen(1)
    with torch.no_grad():  # move R and c away from their start so that they matter
        for r in net.decorrelation:
            r += 0.3 * torch.randn(r.shape, generator=g, dtype=F64)
        for cb in net.decorrelation_bias:
            cb += 0.5 * torch.randn(cb.shape, generator=g, dtype=F64)
    noises = [0.1 * torch.randn(2 * batch, w, generator=g, dtype=F64) for w in sizes[1:]]
    for v in noises:  # sample 2 sees the same noise in both passes: no information, left out
        v[batch + 2] = v[2]
    net.noise_sources = [FixedNoise(v) for v in noises]
    x = torch.randn(batch, sizes[0], generator=g, dtype=F64)
    y = torch.randint(sizes[-1], (batch,), generator=g)

    result = danp_step(net, x, y)
    gW, gb, gR, gc = loop_reference(net, x, y, noises, loss)

    assert result.skipped == 1
    for i in range(len(sizes) - 1):
        torch.testing.assert_close(net.weights[i].grad, gW[i], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(net.biases[i].grad, gb[i], rtol=1e-10, atol=1e-12)
        assert net.weights[i].grad.grad_fn is None and not net.weights[i].grad.requires_grad
    if variant == "danp":
        for i in range(len(sizes) - 1):
            torch.testing.assert_close(net.decorrelation[i].grad, gR[i], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(net.decorrelation_bias[i].grad, gc[i], rtol=1e-10, atol=1e-12)
    else:
        assert net.decorrelation_parameters() == []


def test_np_gradient_averages_to_the_backprop_gradient():
    sizes, batch, repeats = (4, 6, 3), 5, 20_000
    noise = NoiseConfig(kind="gaussian", sigma=1e-3)
    net = DANPNetwork(sizes, gen(2), DANPConfig(variant="np"), noise, dtype=F64)
    g = gen(3)
    x = torch.randn(batch, sizes[0], generator=g, dtype=F64)
    y = torch.randint(sizes[-1], (batch,), generator=g)
    backprop_gradients(net, x, y)
    bp = [p.grad for p in net.forward_parameters()]
    danp_step(net, x.repeat(repeats, 1), y.repeat(repeats))  # many noise draws in one step
    estimate = [p.grad / repeats for p in net.forward_parameters()]
    assert cosine(torch.cat([e.flatten() for e in estimate]), torch.cat([b.flatten() for b in bp])) > 0.9
    for e, b in zip(estimate[::2], bp[::2], strict=True):  # each layer's weights on their own, too
        assert cosine(e, b) > 0.85


def test_backprop_reference_matches_a_plain_autograd_mlp():
    sizes = (5, 7, 3)
    net = DANPNetwork(sizes, gen(4), DANPConfig(variant="danp"), dtype=F64)
    with torch.no_grad():
        net.decorrelation[0].add_(0.2)
        net.decorrelation_bias[1].fill_(0.3)
    x = torch.randn(8, 5, generator=gen(5), dtype=F64)
    y = torch.randint(3, (8,), generator=gen(6))
    W = [w.detach().clone().requires_grad_() for w in net.weights]
    b = [v.detach().clone().requires_grad_() for v in net.biases]
    h = F.leaky_relu((x @ net.decorrelation[0].T) @ W[0].T + b[0], 0.01)
    out = (h @ net.decorrelation[1].T + 0.3) @ W[1].T + b[1]
    F.cross_entropy(out, y, reduction="sum").backward()
    mean_loss = backprop_gradients(net, x, y)
    assert mean_loss == pytest.approx(F.cross_entropy(out, y).item(), rel=1e-12)
    for p, q in zip(net.forward_parameters(), [W[0], b[0], W[1], b[1]], strict=True):
        torch.testing.assert_close(p.grad, q.grad)
    assert all(p.grad is None for p in net.decorrelation_parameters())  # frozen by default
    backprop_gradients(net, x, y, train_decorrelation=True)
    assert all(p.grad is not None for p in net.decorrelation_parameters())


# --- decorrelation ------------------------------------------------------------------------------


def off_diagonal_ratio(z: torch.Tensor) -> float:
    m = z.T @ z / len(z)
    off = m - torch.diag(torch.diag(m))
    return float(off.square().sum() / torch.diag(m).square().sum())


def test_decorrelation_step_reduces_off_diagonal_covariance_and_the_mean():
    g = gen(7)
    mixing = torch.eye(6) + 0.8 * torch.randn(6, 6, generator=g)
    data = torch.randn(4096, 6, generator=g) @ mixing + 1.5  # correlated, off-centre
    net = DANPNetwork((6, 8, 3), gen(8), DANPConfig(variant="danp", decor_lr=2e-3))
    opts = make_optimizers(net, lr=1e-3)
    assert len(opts) == 2
    decor_opt = opts[1]  # the decorrelation step alone: forward weights stay put
    before_ratio = off_diagonal_ratio(net.layer_input(0, data))
    before_mean = float(net.layer_input(0, data).mean(0).abs().mean())
    y = torch.zeros(len(data), dtype=torch.long)
    w0 = net.weights[0].detach().clone()
    for _ in range(400):
        idx = torch.randint(len(data), (64,), generator=g)
        decor_opt.zero_grad()
        danp_step(net, data[idx], y[idx])
        decor_opt.step()
    with torch.no_grad():
        z = net.layer_input(0, data)
    assert off_diagonal_ratio(z) < 0.1 * before_ratio
    assert float(z.mean(0).abs().mean()) < 0.2 * before_mean
    torch.testing.assert_close(net.weights[0].detach(), w0)


def test_np_keeps_r_at_identity_and_equals_danp_at_identity():
    sizes = (5, 6, 4)
    x = torch.randn(16, 5, generator=gen(9), dtype=F64)
    y = torch.randint(4, (16,), generator=gen(10))
    np_net = DANPNetwork(sizes, gen(11), DANPConfig(variant="np"), NoiseConfig(kind="gaussian"), dtype=F64)
    danp_net = DANPNetwork(
        sizes, gen(11), DANPConfig(variant="danp"), NoiseConfig(kind="gaussian"), dtype=F64
    )
    danp_step(np_net, x, y)
    danp_step(danp_net, x, y)  # same weights and noise; R = I, c = 0 at the start
    torch.testing.assert_close(flat_grads(np_net), flat_grads(danp_net), rtol=1e-12, atol=1e-14)

    opts = make_optimizers(np_net, lr=1e-2)
    assert len(opts) == 1 and np_net.decorrelation_parameters() == []
    for _ in range(20):
        for o in opts:
            o.zero_grad()
        danp_step(np_net, x, y)
        for o in opts:
            o.step()
    for i, width in enumerate(sizes[:-1]):
        torch.testing.assert_close(np_net.decorrelation_matrix(i), torch.eye(width, dtype=F64))
    h = F.leaky_relu(x @ np_net.weights[0].T + np_net.biases[0], 0.01)
    torch.testing.assert_close(np_net(x), h @ np_net.weights[1].T + np_net.biases[1])


# --- noise sources ------------------------------------------------------------------------------


def test_registry_holds_every_kind():
    assert set(NOISE_SOURCES) == set(NOISE_KINDS)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_gaussian_and_bernoulli_statistics(dtype):
    n, width, sigma = 4000, 50, 0.02
    tol = 5 * sigma / math.sqrt(n * width)
    gauss = NOISE_SOURCES["gaussian"](width, gen(12), NoiseConfig(kind="gaussian", sigma=sigma), dtype=dtype)
    v = gauss(n)
    assert v.shape == (n, width) and v.dtype == dtype
    assert abs(float(v.mean())) < tol and float(v.std()) == pytest.approx(sigma, rel=0.01)
    bern = NOISE_SOURCES["bernoulli"](width, gen(13), NoiseConfig(kind="bernoulli", sigma=sigma), dtype=dtype)
    v = bern(n)
    assert v.shape == (n, width) and v.dtype == dtype
    torch.testing.assert_close(torch.unique(v), torch.tensor([0.0, sigma], dtype=dtype))
    assert float(v.mean()) == pytest.approx(sigma / 2, abs=tol)
    centred = NOISE_SOURCES["centred_bernoulli"](
        width, gen(14), NoiseConfig(kind="centred_bernoulli", sigma=sigma), dtype=dtype
    )
    v = centred(n)
    torch.testing.assert_close(torch.unique(v), torch.tensor([-sigma / 2, sigma / 2], dtype=dtype))
    assert abs(float(v.mean())) < tol


def test_default_scales_follow_the_authors_runs():
    assert NoiseConfig(kind="smtj").scale == 1.0
    assert NoiseConfig(kind="bernoulli").scale == 0.0125
    assert NoiseConfig(kind="gaussian", sigma=0.3).scale == 0.3


def test_smtj_noise_has_the_authors_statistics_and_its_telegraph_persists_across_calls():
    width, calls = 3000, 40
    source = NOISE_SOURCES["smtj"](width, gen(15), NoiseConfig(kind="smtj"))
    rows = torch.cat([source(1) for _ in range(calls)])  # one sample per call
    assert rows.shape == (calls, width) and rows.dtype == torch.float32
    p = AUTHORS_NOISE
    signs = torch.sign(rows - p.mean_v)  # the telegraph amplitude is 6.5 std of the white part
    white = rows - p.mean_v - p.telegraph_amplitude_v * signs
    assert float(white.std()) == pytest.approx(p.gaussian_std_v, rel=0.02)
    assert float(rows.mean()) == pytest.approx(p.mean_v, abs=2e-4)
    # A state drawn afresh per call would differ half the time; a persisting one flips at 0.0809.
    flips = float((signs[1:] != signs[:-1]).double().mean())
    assert flips == pytest.approx(p.flip_probability, abs=0.006)
    block = source(64)
    assert block.shape == (64, width)
    assert float((torch.sign(block[0] - p.mean_v) != signs[-1]).double().mean()) < 0.12


def test_trace_noise_streams_the_file_per_node_in_time_order(tmp_path):
    length = 500
    path = tmp_path / "trace.csv"
    path.write_text("V\n" + "\n".join(str(float(i)) for i in range(length)) + "\n")
    config = NoiseConfig(kind="trace", trace_path=str(path), sigma=2.0)
    source = NOISE_SOURCES["trace"](7, gen(16), config, dtype=F64)
    rows = torch.cat([source(3), source(5)])
    assert rows.shape == (8, 7) and rows.dtype == F64
    start = rows[0] / 2
    expected = 2.0 * ((start[None, :] + torch.arange(8, dtype=F64)[:, None]) % length)
    torch.testing.assert_close(rows, expected)


def test_network_noise_lands_on_the_network_dtype_and_differs_between_layers():
    net = DANPNetwork((4, 6, 6), gen(17), noise=NoiseConfig(kind="smtj"), dtype=F64)
    x = torch.zeros(3, 4, dtype=F64)
    noisy, clean = net(x, noisy=True), net(x)
    assert noisy.dtype == F64 and not torch.equal(noisy, clean)
    assert len(net.noise_sources) == 2 and net.noise_sources[0] is not net.noise_sources[1]


# --- training -----------------------------------------------------------------------------------


def blobs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    centres = 2.5 * torch.randn(4, 10, generator=gen(18))
    y = torch.randint(4, (n,), generator=generator)
    return centres[y] + torch.randn(n, 10, generator=generator), y


@pytest.mark.parametrize("noise", ["smtj", "bernoulli"])
def test_danp_learns_a_separable_toy_problem(noise):
    g = gen(19)
    x_train, y_train = blobs(2048, g)
    x_test, y_test = blobs(1024, g)
    net = DANPNetwork((10, 32, 32, 4), gen(20), DANPConfig(decor_lr=1e-4), NoiseConfig(kind=noise))
    opts = make_optimizers(net, lr=3e-3)
    first = None
    losses = []
    for _ in range(600):
        idx = torch.randint(len(x_train), (64,), generator=g)
        for o in opts:
            o.zero_grad()
        result = danp_step(net, x_train[idx], y_train[idx])
        for o in opts:
            o.step()
        first = result.loss if first is None else first
        losses.append(result.loss)
    assert sum(losses[-50:]) / 50 < 0.3 * first
    assert accuracy(net, x_test, y_test, noisy=True) > 0.95  # the authors' noisy evaluation
    assert accuracy(net, x_test, y_test, noisy=False) > 0.95


# --- error paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: NoiseConfig(kind="pink"), "kind"),
        (lambda: NoiseConfig(sigma=-0.1), "sigma"),
        (lambda: NoiseConfig(kind="trace"), "trace_path"),
        (lambda: DANPConfig(variant="bp"), "variant"),
        (lambda: DANPConfig(decor_lr=-1e-3), "decor_lr"),
        (lambda: DANPConfig(loss="hinge"), "loss"),
        (lambda: DANPNetwork((5,), gen(0)), "sizes"),
    ],
)
def test_bad_configuration_raises_config_error_naming_the_field(build, field):
    with pytest.raises(ConfigError) as info:
        build()
    message = str(info.value)
    assert message.startswith(field) and "\n" not in message


def test_all_zero_perturbations_skip_the_forward_update():
    net = DANPNetwork((4, 5, 3), gen(21), noise=NoiseConfig(kind="gaussian", sigma=0.0))
    opts = make_optimizers(net, lr=1e-2)
    before = [p.detach().clone() for p in net.forward_parameters()]
    x, y = torch.randn(8, 4, generator=gen(22)), torch.randint(3, (8,), generator=gen(23))
    result = danp_step(net, x, y)
    assert result.skipped == 8
    assert all(p.grad is None for p in net.forward_parameters())
    assert all(p.grad is not None for p in net.decorrelation_parameters())
    for o in opts:
        o.step()
    for p, q in zip(net.forward_parameters(), before, strict=True):
        assert torch.equal(p.detach(), q)


def test_nan_raises_training_diverged_naming_the_layer_and_leaves_grads_alone():
    net = DANPNetwork((4, 5, 5, 3), gen(24), noise=NoiseConfig(kind="gaussian"))
    with torch.no_grad():
        net.weights[1][2, 0] = float("nan")
    x, y = torch.randn(8, 4, generator=gen(25)), torch.randint(3, (8,), generator=gen(26))
    with pytest.raises(TrainingDiverged, match="layer 2 of 3"):
        danp_step(net, x, y)
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(TrainingDiverged):
        backprop_gradients(net, x, y)
