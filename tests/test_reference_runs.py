"""Speed work must not change what is computed: a few seeded steps of each learning rule (AFD,
DW-SGLD, DANP, the Hopfield film) against a reference run stored in ``tests/data/reference_runs.pt``.

The reference was written by this module (``python tests/test_reference_runs.py --write``) from
the code as it stood before the kernels were optimised; rewrite it only for a change that is
meant to change the numbers, and say so in the commit.

Tolerance: ``rtol = 1e-4`` and ``atol = 1e-6`` on floats, exact on counts. Fusing passes, moving
arithmetic into numba (fast-math ``contract``/``reassoc``) or changing the BLAS blocking reorders
float32 sums: each reordering moves a result by a few ulp (~1e-7 relative), and Adam's
normalisation and four steps of training can amplify that by a factor of ten to a hundred. A
change in the physics (a different noise number, a missing pulse, another table interval) moves
the results by far more than 1e-4. The steps run on one thread so that the matrix products sum in
the same order as when the reference was written (on a machine with another vector width the BLAS
may still block them differently: that stays within the tolerance too).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from spinlearn.devices.domain_wall import DomainWall
from spinlearn.devices.texture import TextureFilm, TextureParams
from spinlearn.energy import Ledger
from spinlearn.experiments.hopfield import random_patterns
from spinlearn.experiments.mnist import MNISTConfig
from spinlearn.hardware import SimulatedBackend
from spinlearn.learning import danp, hopfield
from spinlearn.learning.sgld import DWSGLD, SGLDConfig
from spinlearn.nn import MTJActivation, mlp
from spinlearn.nn.dw import Layers
from spinlearn.nn.resnet import mlp as dw_mlp
from spinlearn.training import make_optimizer

REFERENCE = Path(__file__).parent / "data" / "reference_runs.pt"
STEPS, BATCH = 4, 16
RTOL, ATOL = 1e-4, 1e-6


def _batches(features: int, classes: int, seed: int = 5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(BATCH, features, generator=gen), torch.randint(0, classes, (BATCH,), generator=gen))
        for _ in range(STEPS)
    ]


def _train(model, optimizer, batches) -> list[float]:
    losses = []
    for x, y in batches:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def afd_run() -> dict:
    """mnist-afd's device, AFD and energy settings on a 64 -> 2 x 48 -> 10 MLP, Adam: the fused
    layer step with its ledger, as ``benchmarks/afd_vs_torch.py`` times it."""
    cfg = MNISTConfig()
    gen = torch.Generator().manual_seed(1)
    backend = SimulatedBackend(cfg.device.mtj(), gen, twin_mismatch=cfg.device.twin_mismatch)
    backend.ledger = Ledger(cfg.energy)
    model = mlp([64, 48, 48, 10], lambda width, k: MTJActivation(width, backend, f"h{k}", cfg.afd), gen)
    losses = _train(model, make_optimizer(model, cfg.train), _batches(64, 10))
    ledger = backend.ledger
    return {
        "losses": torch.tensor(losses, dtype=torch.float64),
        "reads": torch.tensor(ledger.counts[ledger.phase]["mtj_read"]),
        "read_energy_j": torch.tensor(ledger.joules[ledger.phase]["mtj_read"], dtype=torch.float64),
        **_parameters(model),
    }


def dw_sgld_run() -> dict:
    """mnist-dw-sgld's rule on a 64 -> 48 -> 10 domain-wall MLP (``benchmarks/dw_sgld_vs_sgd.py``)."""
    model = dw_mlp(
        [64, 48, 10], Layers(DomainWall(), torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    )
    opt = DWSGLD(model.parameters(), 0.1, SGLDConfig(temperature=0.1), 1000, torch.Generator().manual_seed(2))
    losses = _train(model, opt, _batches(64, 10))
    walls = {f"{name}.u": p.synapses.u.clone() for name, p in model.named_parameters()}
    return {
        "losses": torch.tensor(losses, dtype=torch.float64),
        "pulses": torch.tensor(opt.pulses),
        "pulse_energy_j": torch.tensor(opt.pulse_energy_j, dtype=torch.float64),
        "hot_fraction": torch.tensor(opt.hot_fraction, dtype=torch.float64),
        **_parameters(model),
        **walls,
    }


def danp_run() -> dict:
    """DANP with decorrelation on a 64 -> 2 x 48 -> 10 MLP, the authors' optimizers
    (``benchmarks/danp_vs_bp.py``), ``decor_lr`` raised so that four steps move R visibly."""
    net = danp.DANPNetwork(
        [64, 48, 48, 10], torch.Generator().manual_seed(0), danp.DANPConfig(variant="danp", decor_lr=1e-3)
    )
    optimizers = danp.make_optimizers(net, lr=1e-3)
    results = []
    for x, y in _batches(64, 10):
        step = danp.danp_step(net, x, y)
        for optimizer in optimizers:
            optimizer.step()
        results.append([step.loss, step.loss_difference, step.skipped])
    return {"steps": torch.tensor(results, dtype=torch.float64), **_parameters(net)}


def hopfield_run() -> dict:
    """The texture film learning 12 patterns of 96 bits for 3 epochs, a read and an async recall
    (``benchmarks/hopfield_n1000.py`` at a small size)."""
    gen = torch.Generator().manual_seed(3)
    patterns = random_patterns(12, 96, gen, "cpu")
    probes, _ = hopfield.flip_probes(patterns, 1, 0.1, 0.1, gen)
    film = TextureFilm(TextureParams(), 96, gen)
    hopfield.train_texture(film, patterns, 3)
    weights = film.read_weights()
    result = hopfield.recall(weights, probes, "async", gen)
    return {
        "w": film.w.clone(),
        "weights": weights,
        "states": result.states,
        "sweeps": torch.tensor(result.sweeps),
        "write_energy_j": torch.tensor(film.write_energy_j, dtype=torch.float64),
        "read_energy_j": torch.tensor(film.read_energy_j, dtype=torch.float64),
    }


RUNS = {"afd": afd_run, "dw_sgld": dw_sgld_run, "danp": danp_run, "hopfield": hopfield_run}


def _one_thread(run):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("rule", list(RUNS))
def test_a_few_seeded_steps_match_the_stored_reference(rule):
    reference = torch.load(REFERENCE, weights_only=True)[rule]
    now = _one_thread(RUNS[rule])
    assert sorted(now) == sorted(reference)
    for key, expected in reference.items():
        if expected.is_floating_point():
            torch.testing.assert_close(
                now[key], expected, rtol=RTOL, atol=ATOL, msg=lambda m, k=key: f"{rule} {k}: {m}"
            )
        else:
            assert torch.equal(now[key], expected), f"{rule} {key}: {now[key]} != {expected}"


def test_the_reference_moves_when_the_physics_does():
    """The tolerance is tight enough to see one noise number more: the same AFD run with the
    backend's read noise pool advanced by one draw is not within it."""
    reference = torch.load(REFERENCE, weights_only=True)["afd"]
    cfg = MNISTConfig()
    gen = torch.Generator().manual_seed(1)
    backend = SimulatedBackend(cfg.device.mtj(), gen, twin_mismatch=cfg.device.twin_mismatch)
    backend.ledger = Ledger(cfg.energy)
    model = mlp([64, 48, 48, 10], lambda width, k: MTJActivation(width, backend, f"h{k}", cfg.afd), gen)
    backend.noise_window(1)
    losses = _one_thread(lambda: _train(model, make_optimizer(model, cfg.train), _batches(64, 10)))
    assert not torch.allclose(
        torch.tensor(losses, dtype=torch.float64), reference["losses"], rtol=RTOL, atol=ATOL
    )


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    REFERENCE.parent.mkdir(exist_ok=True)
    torch.save({rule: _one_thread(run) for rule, run in RUNS.items()}, REFERENCE)
    print(f"wrote {REFERENCE}")
