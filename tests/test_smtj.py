"""Stochastic MTJ: simulated telegraph statistics against the analytic Neel-Arrhenius values."""

import math
import sys

import numpy as np
import pytest
import torch

from spinlearn.devices import smtj, smtj_noise
from spinlearn.devices.smtj import SMTJ, SMTJParams
from spinlearn.devices.smtj_noise import AUTHORS_NOISE, TelegraphNoise, TelegraphNoiseParams, TraceNoise
from spinlearn.errors import ConfigError, DataError

F64 = torch.float64
IDEAL = dict(alpha_k_per_w=0.0, delta_variability=0.0, ic_variability=0.0, read_noise_v=0.0)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dwell_stats(trace: torch.Tensor, dt_s: float) -> dict[float, tuple[float, float, int]]:
    """Per state: mean dwell time (s), coefficient of variation of the dwells, number of exits.

    The mean is time spent in the state over exits from it (the censoring-free estimator: runs cut
    by the ends of the trace still count their time). The spread uses the runs that lie wholly inside
    the trace, each weighted by 1 / (n_steps - length): long runs fit into a window less often.
    """
    s = trace.numpy()
    exits = s[1:] != s[:-1]
    dev, t = np.nonzero(exits.T)  # sorted by device, then time
    same = dev[1:] == dev[:-1]
    lengths = (t[1:] - t[:-1])[same]
    run_state = s[t[:-1][same] + 1, dev[:-1][same]]
    out = {}
    for state in (1.0, -1.0):
        occupied = s[:-1] == state
        n_exits = int((exits & occupied).sum())
        runs = lengths[run_state == state].astype(float)
        w = 1.0 / (len(s) - runs)
        mean = np.average(runs, weights=w)
        cv = math.sqrt(np.average((runs - mean) ** 2, weights=w)) / mean
        out[state] = (dt_s * occupied.sum() / n_exits, cv, n_exits)
    return out


# --- analytic relations --------------------------------------------------------------------------


def test_mean_state_is_tanh_of_delta_i_over_ic_without_field_or_heating():
    for n_exp in (1.0, 2.0, 3.0):  # the field exponent must not matter at H = 0
        p = SMTJParams(delta=11.0, ic_a=100e-6, field_exponent=n_exp, **IDEAL)
        pop = smtj.nominal_population(p, 1, dtype=F64)
        i = torch.linspace(-60e-6, 60e-6, 25, dtype=F64)[:, None]
        expected = torch.tanh(11.0 * i / 100e-6)
        torch.testing.assert_close(smtj.mean_state(i, pop), expected, rtol=0, atol=1e-14)


def test_mean_state_and_p_bit_are_the_dwell_time_ratios_with_field_and_heating():
    p = SMTJParams(delta=9.0, alpha_k_per_w=3e7, field_exponent=1.5)
    pop = smtj.sample_population(p, 50, gen(1), F64)
    i = torch.linspace(-30e-6, 30e-6, 7, dtype=F64)[:, None]
    h = torch.tensor(0.07 * p.hk_a_per_m, dtype=F64)
    tau_p, tau_ap = smtj.dwell_times(i, pop, h)
    torch.testing.assert_close(
        smtj.mean_state(i, pop, h), (tau_p - tau_ap) / (tau_p + tau_ap), rtol=1e-12, atol=1e-14
    )
    torch.testing.assert_close(
        smtj.p_bit_probability(i, pop, h), tau_p / (tau_p + tau_ap), rtol=1e-12, atol=1e-14
    )


def test_positive_current_and_field_favour_p():
    pop = smtj.nominal_population(SMTJParams(**IDEAL), 1, dtype=F64)
    tau_p, tau_ap = smtj.dwell_times(20e-6, pop)
    assert tau_p.item() > tau_ap.item()
    assert smtj.mean_state(20e-6, pop).item() > 0.9
    assert smtj.mean_state(0.0, pop, 0.05 * SMTJParams().hk_a_per_m).item() > 0.5
    assert smtj.mean_state(-20e-6, pop).item() < -0.9
    # Past I_c the barrier of the disfavoured state is gone: it lives tau_0.
    assert smtj.dwell_times(-2 * SMTJParams().ic_a, pop)[0].item() == pytest.approx(SMTJParams().tau0_s)


def test_step_probabilities_are_the_exact_two_state_propagator():
    p = SMTJParams(**IDEAL)
    pop = smtj.nominal_population(p, 1, dtype=F64)
    tau_p, tau_ap = (t.item() for t in smtj.dwell_times(8e-6, pop))
    q = torch.tensor([[-1 / tau_p, 1 / tau_p], [1 / tau_ap, -1 / tau_ap]], dtype=F64)
    for dt in (1e-7, 5e-6, 1e-4):  # dt from << tau to > tau
        propagator = torch.linalg.matrix_exp(q * dt)
        p_p, p_ap = smtj.flip_probabilities(8e-6, pop, dt)
        assert p_p.item() == pytest.approx(propagator[0, 1].item(), rel=1e-12)
        assert p_ap.item() == pytest.approx(propagator[1, 0].item(), rel=1e-12)
    # For dt << tau it is the first-flip probability 1 - exp(-dt / tau).
    p_p, _ = smtj.flip_probabilities(8e-6, pop, 1e-9)
    assert p_p.item() == pytest.approx(-math.expm1(-1e-9 / tau_p), rel=1e-4)


# --- simulated statistics ------------------------------------------------------------------------


def test_mean_dwell_times_match_tau_p_and_tau_ap():
    dt = 0.25e-6
    p = SMTJParams(dt_s=dt, **IDEAL)
    device = SMTJ(p)
    pop = device.nominal(1000, dtype=F64)
    current = 5e-6  # tau_P ~ 104 us, tau_AP ~ 35 us: asymmetric, so a swapped sign would show
    trace, _ = device.simulate(pop, 8000, gen(2), current)
    tau_p, tau_ap = (t[0].item() for t in device.dwell_times(pop, current))
    assert tau_p / tau_ap > 2.5
    dwell = dwell_stats(trace, dt)
    for s, tau in ((1.0, tau_p), (-1.0, tau_ap)):
        mean, cv, n_exits = dwell[s]
        assert n_exits > 8000
        assert mean == pytest.approx(tau, rel=0.03)
        assert cv == pytest.approx(1.0, abs=0.05)  # exponential (geometric) dwells


def test_autocorrelation_decays_with_the_sum_of_the_rates():
    dt = 10e-6  # K dt ~ 0.4: a first-flip step rule would decay visibly faster than exp(-K t)
    p = SMTJParams(dt_s=dt, **IDEAL)
    device = SMTJ(p)
    pop = device.nominal(2000, dtype=F64)
    current = 5e-6
    trace, _ = device.simulate(pop, 2000, gen(3), current)  # starts in the steady state
    tau_p, tau_ap = (t[0].item() for t in device.dwell_times(pop, current))
    rate = 1 / tau_p + 1 / tau_ap
    s = trace.numpy()
    mean = device.mean_state(pop, current)[0].item()
    assert s.mean() == pytest.approx(mean, abs=0.02)
    x = s - s.mean()
    var = (x * x).mean()
    for lag in (1, 2, 3, 5, 8):
        measured = (x[lag:] * x[:-lag]).mean() / var
        assert measured == pytest.approx(math.exp(-rate * lag * dt), abs=0.01), lag


def test_mean_state_follows_current_and_field_from_any_start():
    dt = 2e-6
    p = SMTJParams(dt_s=dt, field_exponent=2.0, **IDEAL)
    device = SMTJ(p)
    currents = torch.linspace(-15e-6, 15e-6, 11, dtype=F64)
    fields = torch.tensor([0.0, 0.05 * p.hk_a_per_m], dtype=F64)
    reps = 200
    i = currents.repeat_interleave(reps).repeat(2)
    h = fields.repeat_interleave(reps * len(currents))
    pop = device.nominal(i.numel(), dtype=F64)
    start = -torch.ones(i.numel(), dtype=F64)  # all AP, far from the steady state
    trace, _ = device.simulate(pop, 1800, gen(4), i, h, state=start)
    measured = trace[300:].mean(0).reshape(2, len(currents), reps).mean(-1)
    analytic = device.mean_state(pop, i, h).reshape(2, len(currents), reps)[..., 0]
    torch.testing.assert_close(measured, analytic, rtol=0, atol=0.04)
    assert analytic[1, 5].item() == pytest.approx(math.tanh(11.0 * (1.05**2 - 0.95**2) / 2))
    assert analytic[0].min() < -0.9 and analytic[0].max() > 0.9


def test_joule_heating_shortens_the_dwell_times_as_predicted():
    dt = 0.05e-6
    current = 10e-6
    hot = SMTJParams(dt_s=dt, **{**IDEAL, "alpha_k_per_w": 5e7})
    cold = SMTJParams(dt_s=dt, **IDEAL)
    pop_hot = smtj.nominal_population(hot, 1000, dtype=F64)
    pop_cold = smtj.nominal_population(cold, 1, dtype=F64)
    trace, _ = SMTJ(hot).simulate(pop_hot, 8000, gen(5), current)
    dwell = {s: v[0] for s, v in dwell_stats(trace, dt).items()}
    hot_tau = [t[0].item() for t in smtj.dwell_times(current, pop_hot)]
    cold_tau = [t[0].item() for t in smtj.dwell_times(current, pop_cold)]
    p_flip = [p[0].item() for p in smtj.flip_probabilities(current, pop_hot, dt)]
    for k, s in enumerate((1.0, -1.0)):
        assert hot_tau[k] < 0.5 * cold_tau[k]
        assert dwell[s] < 0.5 * cold_tau[k]
        # The sampled chain's mean run is dt / p_s = tau_s (1 + K dt / 2 + ...), exact at any dt.
        assert dwell[s] == pytest.approx(dt / p_flip[k], rel=0.04)
        assert dwell[s] == pytest.approx(hot_tau[k], rel=0.05)


def test_variability_spreads_the_per_device_rates():
    dt = 2e-6
    current = 5e-6
    p = SMTJParams(dt_s=dt, delta_variability=0.1, ic_variability=0.2, alpha_k_per_w=0.0, read_noise_v=0.0)
    device = SMTJ(p)
    pop = device.sample(400, gen(6), F64)
    assert (pop.delta.std() / p.delta).item() == pytest.approx(0.1, abs=0.015)
    assert (pop.ic_a.std() / p.ic_a).item() == pytest.approx(0.2, abs=0.03)
    assert pop.delta.min() > 0 and pop.ic_a.min() > 0
    n_steps = 8000
    trace, _ = device.simulate(pop, n_steps, gen(7), current)
    flips = (trace[1:] != trace[:-1]).sum(0).numpy()
    p_p, p_ap = smtj.flip_probabilities(current, pop, dt)
    pi_p = smtj.p_bit_probability(current, pop)
    expected = ((n_steps - 1) * (pi_p * p_p + (1 - pi_p) * p_ap)).numpy()
    assert np.log(expected).std() > 0.5  # the spread is real
    well = expected > 100  # enough flips for a ~10 % count per device
    assert well.sum() > 200
    assert flips[well].sum() / expected[well].sum() == pytest.approx(1.0, rel=0.03)
    assert np.corrcoef(np.log(flips[well]), np.log(expected[well]))[0, 1] > 0.95
    nominal = device.nominal(4, dtype=F64)
    assert torch.unique(smtj.dwell_times(current, nominal)[0]).numel() == 1


def test_simulate_is_step_repeated_and_per_step_drive_is_the_same_path():
    p = SMTJParams(dt_s=3e-6, read_noise_v=0.0)
    device = SMTJ(p)
    pop = device.sample(64, gen(8), F64)
    current = torch.linspace(-10e-6, 10e-6, 64, dtype=F64)
    start = device.steady_state(pop, gen(0), current)
    trace, final = device.simulate(pop, 300, gen(9), current, state=start)
    g = gen(9)
    state, rows = start, []
    for _ in range(300):
        state = device.step(state, pop, g, current)
        rows.append(state)
    assert torch.equal(trace, torch.stack(rows)) and torch.equal(final, state)
    per_step, _ = device.simulate(pop, 300, gen(9), current.expand(300, 64), state=start)
    assert torch.equal(per_step, trace)
    volts, _ = device.simulate(pop, 300, gen(9), current, state=start, output="voltage")
    torch.testing.assert_close(volts, current * smtj.resistance(trace, pop))
    with pytest.raises(ValueError, match="n_steps"):
        device.simulate(pop, 300, gen(9), current.expand(299, 64))


def test_voltage_readout_through_tmr_and_read_noise():
    p = SMTJParams(r_p_ohm=5000.0, tmr0=1.5, read_noise_v=2e-3, i_read_a=4e-6)
    device = SMTJ(p)
    pop = device.nominal(500, dtype=F64)
    states = torch.tensor([1.0, -1.0], dtype=F64)
    r = smtj.resistance(states, smtj.nominal_population(p, 2, dtype=F64))
    assert r.tolist() == pytest.approx([5000.0, 12500.0])
    volts, _ = device.simulate(pop, 400, gen(10), output="voltage")
    g = gen(10)
    s0 = device.steady_state(pop, g)
    clean, _ = device.simulate(pop, 400, g, state=s0)
    residual = volts - 4e-6 * smtj.resistance(clean, pop)
    assert residual.std().item() == pytest.approx(2e-3, rel=0.02)
    assert residual.mean().abs().item() < 1e-4


# --- the authors' noise preset -------------------------------------------------------------------


def test_authors_noise_preset_statistics():
    assert (AUTHORS_NOISE.mean_v, AUTHORS_NOISE.gaussian_std_v) == (0.042092104, 0.00090841466)
    assert (AUTHORS_NOISE.telegraph_amplitude_v, AUTHORS_NOISE.flip_probability) == (0.0059316154, 0.0809)
    noise = TelegraphNoise(500, gen(11), dtype=F64)
    calls = [noise.sample(200) for _ in range(10)]
    v = torch.cat(calls).numpy()
    assert v.shape == (2000, 500)
    assert v.mean() == pytest.approx(0.042092104, abs=1e-4)
    dev = v - AUTHORS_NOISE.mean_v
    sign = np.sign(dev)  # the Gaussian part is 6.5 sigma below the telegraph amplitude
    assert np.abs(dev).mean() == pytest.approx(0.0059316154, rel=0.005)
    assert (dev - 0.0059316154 * sign).std() == pytest.approx(0.00090841466, rel=0.02)
    changes = sign[1:] != sign[:-1]
    assert changes.mean() == pytest.approx(0.0809, abs=0.002)
    boundaries = np.arange(199, 1999, 200)  # last sample of a call vs first of the next
    assert changes[boundaries].mean() < 0.12  # the telegraph state persists between calls (reset: 0.5)
    assert abs((sign[0] > 0).mean() - 0.5) < 0.1  # the initial sign is random per node


def test_authors_noise_is_reproducible_and_takes_other_statistics():
    a, _ = smtj_noise.authors_noise(smtj_noise.initial_telegraph_sign(8, gen(12)), 5, gen(13))
    b, _ = smtj_noise.authors_noise(smtj_noise.initial_telegraph_sign(8, gen(12)), 5, gen(13))
    assert torch.equal(a, b)
    quiet = TelegraphNoiseParams(
        mean_v=1.0, gaussian_std_v=0.0, telegraph_amplitude_v=0.5, flip_probability=1.0
    )
    sign = torch.ones(3, dtype=F64)
    v, sign_after = smtj_noise.authors_noise(sign, 4, gen(14), quiet)
    assert v[:, 0].tolist() == [0.5, 1.5, 0.5, 1.5]  # flips before each sample, every sample
    assert sign_after.tolist() == [1.0, 1.0, 1.0]


# --- measured traces -----------------------------------------------------------------------------


def test_trace_noise_round_trips_a_csv_and_wraps(tmp_path):
    path = tmp_path / "trace.csv"
    data = np.arange(10) * 0.5 + 0.25
    path.write_text("t,V\n" + "".join(f"{k * 5e-6},{x}\n" for k, x in enumerate(data)))
    source = TraceNoise(path, 3, dtype=F64)
    assert len(source) == 10 and source.offsets.tolist() == [0, 3, 6]
    first = source.sample(4)
    second = source.sample(8)  # runs past the end: wraps around
    got = torch.cat([first, second]).numpy()
    t = np.arange(12)[:, None]
    np.testing.assert_array_equal(got, data[(t + np.array([0, 3, 6])) % 10])
    assert source.position == 2
    scaled = TraceNoise(path, 2, scale=2.0, generator=gen(15), dtype=F64)
    assert set(scaled.sample(10)[:, 0].tolist()) == set((2 * data).tolist())


def test_trace_noise_reads_one_column_files_and_chunk_directories(tmp_path):
    (tmp_path / "bare.csv").write_text("1.0\n2.0\n3.0\n")
    (tmp_path / "named.csv").write_text("voltage\n4.0\n5.0\n")
    np.testing.assert_array_equal(smtj_noise.load_trace(tmp_path / "bare.csv"), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(smtj_noise.load_trace(tmp_path / "named.csv"), [4.0, 5.0])
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    for k in (0, 1, 2, 10):  # numeric order, not 0, 1, 10, 2
        (chunks / f"trace{k}.csv").write_text(f"V\n{k}.0\n{k}.5\n")
    np.testing.assert_array_equal(smtj_noise.load_trace(chunks), [0, 0.5, 1, 1.5, 2, 2.5, 10, 10.5])


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("empty.csv", "", "empty"),
        ("header.csv", "V\n", "no samples"),
        ("word.csv", "V\n0.1\nabc\n", "not numeric"),
        ("nan.csv", "V\n0.1\nnan\n", "NaN"),
        ("inf.csv", "0.1\n0.2\ninf\n", "NaN/Inf"),
        ("cols.csv", "t,W\n0,1\n", "no column 'V'"),
        ("bare2.csv", "0,1\n1,2\n", "no header"),
    ],
)
def test_bad_trace_files_raise_one_line_data_errors(tmp_path, name, text, why):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=why) as info:
        TraceNoise(path, 4)
    message = str(info.value)
    assert name in message and "\n" not in message


def test_missing_trace_and_parquet_without_pyarrow(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="not found"):
        smtj_noise.load_trace(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="holds no"):
        smtj_noise.load_trace(tmp_path)
    path = tmp_path / "trace.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(
        DataError, match=r"needs the \[parquet\] extra: pip install 'spinlearn\[parquet\]'"
    ) as info:
        smtj_noise.load_trace(path)
    assert "trace.parquet" in str(info.value) and "\n" not in str(info.value)


def test_parquet_round_trip_when_pyarrow_is_installed(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "trace0.pqt"
    pq.write_table(pa.table({"t": [0.0, 1.0, 2.0], "V": [0.04, 0.05, 0.03]}), path)
    np.testing.assert_array_equal(smtj_noise.load_trace(path), [0.04, 0.05, 0.03])


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (SMTJParams, "tau0_s", 0.0),
        (SMTJParams, "delta", -1.0),
        (SMTJParams, "delta", 0.0),
        (SMTJParams, "ic_a", 0.0),
        (SMTJParams, "hk_a_per_m", -5.0),
        (SMTJParams, "field_exponent", 0.5),
        (SMTJParams, "temperature_k", 0.0),
        (SMTJParams, "alpha_k_per_w", -1.0),
        (SMTJParams, "tmr0", 0.0),
        (SMTJParams, "r_p_ohm", 0.0),
        (SMTJParams, "dt_s", 0.0),
        (SMTJParams, "delta_variability", -0.1),
        (SMTJParams, "ic_variability", 2.0),
        (SMTJParams, "delta", "eleven"),
        (TelegraphNoiseParams, "flip_probability", 1.5),
        (TelegraphNoiseParams, "gaussian_std_v", -1e-3),
    ],
)
def test_bad_parameters_raise_config_error_naming_the_field(cls, field, value):
    with pytest.raises(ConfigError, match=field):
        cls(**{field: value})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_telegraph_noise_is_bitwise_the_eager_passes(dtype, monkeypatch):
    """The numba pass (CPU) against the eager flips, cumulative product and arithmetic, over calls."""
    runs, calls = [], []
    kernel = smtj_noise._telegraph_fused
    monkeypatch.setattr(smtj_noise, "_telegraph_fused", lambda *a: calls.append(1) or kernel(*a))
    for fused in (True, False):
        if not fused:
            assert calls  # the numba pass ran in the first round
            calls.clear()
            monkeypatch.setattr(smtj_noise._jit, "available", lambda: False)
        g = gen(21)
        sign = smtj_noise.initial_telegraph_sign(300, g, dtype)
        samples = []
        for rows in (64, 1, 129):
            v, sign = smtj_noise.authors_noise(sign, rows, g)
            samples.append(v)
        runs.append((torch.cat(samples), sign))
    assert not calls
    (v_fused, sign_fused), (v_eager, sign_eager) = runs
    assert v_fused.dtype == dtype and torch.equal(v_fused, v_eager) and torch.equal(sign_fused, sign_eager)
    flips = (v_fused[1:] - v_fused[:-1]).abs() > AUTHORS_NOISE.telegraph_amplitude_v  # sign changes
    assert 0.05 < float(flips.double().mean()) < 0.12  # flip probability 0.0809


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_telegraph_noise_in_half_precision_takes_the_eager_passes(dtype):
    g = gen(22)
    v, sign = smtj_noise.authors_noise(smtj_noise.initial_telegraph_sign(40, g, dtype), 3, g)
    assert v.dtype == sign.dtype == dtype and v.shape == (3, 40)
    assert float((v.float() - AUTHORS_NOISE.mean_v).abs().max()) < 0.02
