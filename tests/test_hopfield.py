"""Texture film physics, Hopfield rules and recall, against definitions and theory."""

import dataclasses
import json

import pytest
import torch
from cli_helpers import run_summary, spinlearn

from spinlearn import config, data
from spinlearn.devices import _texture_fused
from spinlearn.devices.texture import TextureFilm, TextureParams, relaxation_fraction, symmetric_noise
from spinlearn.errors import ConfigError
from spinlearn.experiments.hopfield import SWEEP_RULES, Hopfield35Config, random_patterns, similar_patterns
from spinlearn.learning import hopfield

QUIET = TextureParams(write_noise=0.0, read_noise=0.0, initial_spread=0.0)


def film(params=QUIET, n=40, seed=0):
    return TextureFilm(params, n, torch.Generator().manual_seed(seed), dtype=torch.float64)


def patterns(count, n, seed=1):
    return random_patterns(count, n, torch.Generator().manual_seed(seed), "cpu").double()


@pytest.mark.parametrize("fused", [True, False])
def test_one_epoch_equals_the_law_applied_pulse_by_pulse(fused, monkeypatch):
    """The numba epoch (CPU) and the eager one (no numba, or off the CPU) alike."""
    calls = []
    pulses = _texture_fused.pulses
    monkeypatch.setattr(_texture_fused, "pulses", lambda *a: calls.append(1) or pulses(*a))
    if not fused:
        monkeypatch.setattr(_texture_fused, "applies", lambda w: False)
    device = film(dataclasses.replace(QUIET, variability=0.3, initial_spread=0.05, hebbian_gain=0.2))
    xs = patterns(9, 40)
    w, c, n = device.w.clone(), device.coupling, 40
    eta, rho = device.params.step_fraction, device.params.hebbian_gain
    for x in xs:  # dw_ij = eta c_i c_j [rho s_i s_j - (y_i s_j + s_i y_j) / 2], y = W s / N
        y = w @ x / n
        drive = rho * torch.outer(x, x) - (torch.outer(y, x) + torch.outer(x, y)) / 2
        w += eta * torch.outer(c, c) * drive
        w.fill_diagonal_(0.0)
    device.apply(xs)
    assert bool(calls) == fused
    torch.testing.assert_close(device.w, w.clamp(-1, 1), rtol=0, atol=1e-14)


def test_fused_epochs_follow_the_eager_ones_with_write_noise(monkeypatch):
    """float32, the default noise: the same draws; the loop's sums in another order only."""
    runs = []
    for fused in (True, False):
        monkeypatch.setattr(_texture_fused, "applies", lambda w, on=fused: on)
        gen = torch.Generator().manual_seed(3)
        device = TextureFilm(TextureParams(), 200, gen)
        xs = random_patterns(30, 200, gen, "cpu")
        for _ in range(3):
            device.apply(xs)
        runs.append(device.w)
    assert torch.equal(runs[0], runs[0].T)
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("noise_std", [0.0, 0.05])
def test_the_write_back_is_bitwise_the_eager_passes(noise_std):
    """The film's own eager write-back against the numba one, from the same state and generator."""
    films = []
    for fused in (True, False):
        film = TextureFilm(TextureParams(initial_spread=0.5), 130, torch.Generator().manual_seed(4))
        film.w[0, 1] = film.w[1, 0] = 0.999  # pushed past the clip
        update = torch.randn(130, 130, generator=torch.Generator().manual_seed(5))
        film._write_back(update, 0.3, noise_std, fused=fused)
        films.append(film.w)
    assert torch.equal(films[0], films[1]) and float(films[0][0, 1]) == 1.0
    assert torch.equal(films[0], films[0].T) and bool((films[0].diagonal() == 0).all())


def test_an_oja_pulse_is_the_hand_computed_step():
    device = film(
        dataclasses.replace(QUIET, law="oja", variability=0.3, initial_spread=0.05, hebbian_gain=0.2)
    )
    x = patterns(1, 40)[0]
    w, c, n = device.w.clone(), device.coupling, 40
    eta, rho = device.params.step_fraction, device.params.hebbian_gain
    y = w @ x / n  # the output: output in the Hebbian factor, decay quadratic in it
    z = w @ y / n
    step = (
        eta
        * torch.outer(c, c)
        * (
            (torch.outer(y, x) + torch.outer(x, y)) / 2
            - (torch.outer(y, z) + torch.outer(z, y)) / (2 * rho**2)
        )
    )
    expected = (w + step).fill_diagonal_(0.0)
    device.apply(x[None])
    torch.testing.assert_close(device.w, expected.clamp(-1, 1), rtol=0, atol=1e-15)
    assert not torch.allclose(device.w, film(dataclasses.replace(device.params, law="delta")).w)


def test_the_oja_law_relaxes_a_stored_pattern_to_rho_from_either_side():
    rho = QUIET.hebbian_gain
    x = patterns(1, 40)[0]
    for start in (0.2 * rho, 1.5 * rho):  # below rho sqrt(1 + 2 / eta), where its Euler step is stable
        device = film(dataclasses.replace(QUIET, law="oja", variability=0.0))
        device.w = (start * torch.outer(x, x)).fill_diagonal_(0.0)
        for _ in range(40):
            device.apply(x[None])
        fixed = rho * 40 / 39  # W x / N = rho x: the delta law's fixed point (a zero diagonal)
        torch.testing.assert_close(
            device.w, (fixed * torch.outer(x, x)).fill_diagonal_(0.0), rtol=1e-6, atol=0
        )


def test_device_law_from_the_config_picks_the_films_law():
    cfg = config.build(Hopfield35Config, overrides={"device.law": "oja", "device.write_noise": 0.0})
    assert cfg.device.law == "oja" and Hopfield35Config().device.law == "delta"
    xs = patterns(3, 40)
    trained = {}
    for name, params in {"config": cfg.device, "delta": dataclasses.replace(cfg.device, law="delta")}.items():
        trained[name] = film(params)
        trained[name].apply(xs)
    oja = film(dataclasses.replace(cfg.device, law="oja"))
    oja.apply(xs)
    assert torch.equal(trained["config"].w, oja.w) and not torch.equal(oja.w, trained["delta"].w)


@pytest.mark.parametrize("variability", [0.0, 0.3])
def test_fixed_point_is_the_scaled_projection_whatever_the_electrodes(variability):
    device = film(dataclasses.replace(QUIET, variability=variability))
    xs = patterns(6, 40)
    for _ in range(1000):
        device.apply(xs)
    rho = device.params.hebbian_gain
    torch.testing.assert_close(xs @ device.w / 40, rho * xs, rtol=0, atol=1e-6)
    assert torch.equal(device.w, device.w.T) and bool((device.w.diagonal() == 0).all())


def test_below_depinning_the_texture_does_not_move_and_configs_refuse_it():
    assert relaxation_fraction(3e6, 0.1, 0.1, 1e-6) == 0.0
    assert relaxation_fraction(3e6, 0.09, 0.1, 1e-6) == 0.0
    assert 0 < relaxation_fraction(3e6, 0.5, 0.1, 1e-6) < 1
    with pytest.raises(ConfigError, match="never move"):
        TextureParams(v0_v=0.1, v_depin_v=0.1)
    with pytest.raises(ConfigError, match="read would move"):
        TextureParams(v_read_v=0.2, v_depin_v=0.1)


def test_pulse_energy_is_the_joule_sum_over_links():
    device = film(dataclasses.replace(QUIET, initial_spread=0.3), n=12)
    xs = patterns(4, 12)
    g, p = device.conductance(), device.params
    direct = sum(float((g * (p.v0_v * (x[:, None] - x[None, :])) ** 2).sum()) / 2 for x in xs) * p.pulse_s
    device.apply(xs)
    assert device.write_energy_j == pytest.approx(direct, rel=1e-12)
    assert device.writes == 4


def test_noise_is_one_symmetric_draw_per_link_with_the_set_spread():
    z = symmetric_noise(600, 0.3, torch.Generator().manual_seed(0), torch.empty(0, dtype=torch.float64))
    assert torch.equal(z, z.T) and bool((z.diagonal() == 0).all())
    upper = z[torch.triu_indices(600, 600, 1).unbind()]
    assert float(upper.std()) == pytest.approx(0.3, rel=0.01)
    noisy = film(dataclasses.replace(QUIET, read_noise=0.02), n=300)
    reads = torch.stack([noisy.read_weights() for _ in range(3)])
    assert float((reads[0] - reads[1]).std() / 2**0.5) == pytest.approx(0.02 * (299 / 300) ** 0.5, rel=0.03)


def test_storkey_matches_its_definition():
    xs = patterns(5, 12)
    n = 12
    w = torch.zeros(n, n, dtype=torch.float64)
    for x in xs:
        h = w @ x
        new = w.clone()
        for i in range(n):
            for j in range(n):
                if i != j:
                    h_ij = h[i] - w[i, i] * x[i] - w[i, j] * x[j]
                    h_ji = h[j] - w[j, j] * x[j] - w[j, i] * x[i]
                    new[i, j] += (x[i] * x[j] - x[i] * h_ji - h_ij * x[j]) / n
        w = new
    torch.testing.assert_close(hopfield.storkey(xs), w, rtol=0, atol=1e-12)


def test_hebbian_capacity_sits_in_the_finite_size_band():
    g = torch.Generator().manual_seed(0)

    def mean_overlap(alpha):
        xs = random_patterns(round(alpha * 100), 100, g, "cpu")
        probes, index = hopfield.flip_probes(xs, 1, 0.1, 0.1, g)
        states = hopfield.recall(hopfield.hebbian(xs), probes, "async", g).states
        return float(hopfield.overlap(states, xs[index]).mean())

    assert mean_overlap(0.05) >= 0.99
    assert mean_overlap(0.3) < 0.8


def test_async_recall_never_raises_the_energy():
    g = torch.Generator().manual_seed(0)
    xs = random_patterns(30, 100, g, "cpu")
    weights = hopfield.hebbian(xs)
    states = torch.where(torch.rand(8, 100, generator=g) < 0.5, 1.0, -1.0)
    energies = [hopfield.energy(weights, states)]
    for _ in range(10):
        states = hopfield.recall(weights, states, "async", g, max_sweeps=1).states
        energies.append(hopfield.energy(weights, states))
    steps = torch.stack(energies).diff(dim=0)
    assert bool((steps <= 1e-5).all()) and bool((steps < 0).any())


@pytest.mark.parametrize("mode", hopfield.RECALL_MODES)
def test_stored_patterns_are_fixed_points_of_a_trained_film(mode):
    device = film(n=35)
    xs = data.letter_patterns("BEFPR").double()
    hopfield.train_texture(device, xs, 30)
    result = hopfield.recall(device.read_weights(), xs, mode)
    assert torch.equal(result.states, xs) and result.converged and result.sweeps == 1


def test_probes_flip_the_requested_number_of_pixels():
    xs = data.letter_patterns("AB")
    probes, index = hopfield.flip_probes(xs, 50, 0.1, 0.2, torch.Generator().manual_seed(0))
    flipped = (probes != xs[index]).sum(1)
    assert int(flipped.min()) >= round(0.1 * 35) and int(flipped.max()) <= round(0.2 * 35)
    assert index.tolist() == [0] * 50 + [1] * 50


def test_similar_families_have_the_requested_overlap():
    xs = similar_patterns(40, 2000, 0.5, torch.Generator().manual_seed(0), "cpu")
    overlaps = hopfield.overlap(xs[:, None], xs[None, :])
    off = overlaps[~torch.eye(40, dtype=torch.bool)]
    assert float(off.mean()) == pytest.approx(0.5, abs=0.02)


def test_letters_and_patterns_are_checked():
    assert data.letter_patterns("EF").shape == (2, 35)
    for bad in ("E1", "", "EE"):
        with pytest.raises(ConfigError):
            data.letter_patterns(bad)
    with pytest.raises(ConfigError, match=r"\+1 or -1"):
        hopfield.hebbian(torch.zeros(2, 5))


def test_hopfield_35_recalls_similar_letters_within_ten_epochs(tmp_path):
    summary = run_summary(tmp_path, "hopfield-35")
    metrics = summary["metrics"]
    assert metrics["recall_accuracy_mean"] >= 0.95 and metrics["epochs_to_target_mean"] <= 10
    assert metrics["pattern_overlap_mean_mean"] > 0.6
    assert metrics["recall_accuracy_hebbian_mean"] < metrics["recall_accuracy_mean"]
    assert metrics["recall_accuracy_texture_delta_mean"] == metrics["recall_accuracy_mean"]  # device.law
    for name in ("recall_accuracy_texture_oja", "epochs_to_target_texture_oja", "epochs_to_target_hebbian"):
        assert f"{name}_mean" in metrics
    assert {"patterns_probes_recalls.png", "conductance.png", "recall_curve.png", "energy.png"} <= set(
        summary["plots"]
    )
    energy = summary["energy"]
    assert energy["train_j"] == pytest.approx(metrics["write_energy_j_mean"])
    assert energy["digital_baseline_train_j"] == pytest.approx(3 * 35**2 * 50 * (4.6e-12 + 2 * 5e-12))
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 10 and "recall_accuracy" in json.loads(lines[0])


def test_capacity_and_similarity_sweeps_write_their_metrics(tmp_path):
    capacity = run_summary(
        tmp_path / "cap",
        "hopfield-capacity",
        "--set", "capacity.sizes=[60]",
        "--set", "capacity.alphas=[0.05, 0.5]",
        "--set", "train.epochs=5",
    )["metrics"]  # fmt: skip
    assert capacity["capacity_alpha_hebbian_n60_mean"] == 0.05
    rules = {
        k.removeprefix("capacity_alpha_").rsplit("_n60", 1)[0]
        for k in capacity
        if k.startswith("capacity_alpha")
    }
    assert rules == set(SWEEP_RULES) and {"texture_delta", "texture_oja"} <= rules
    similar = run_summary(
        tmp_path / "sim",
        "hopfield-similar",
        "--set",
        "similar.similarities=[0.0, 0.6]",
        "--set",
        "similar.n_nodes=60",
    )["metrics"]
    assert similar["recall_texture_delta_sim60_mean"] >= similar["recall_hebbian_sim60_mean"]
    assert "recall_texture_oja_sim60_mean" in similar
    assert (tmp_path / "sim" / "recall_vs_similarity.png").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.letters=E1", "letters"),
        ("probes.flip_min=0.3", "flip_min"),
        ("device.v0_v=0.05", "never move"),
        ("capacity.rules=[hebbian, magic]", "magic"),
        ("device.law=hebb", "device.law"),
    ],
)
def test_bad_hopfield_inputs_give_one_line_and_exit_2(tmp_path, override, message):
    name = "hopfield-capacity" if override.startswith("capacity") else "hopfield-35"
    done = spinlearn("run", name, "--set", override, "--out", str(tmp_path), "--quiet")
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
