"""``afd-gradcheck``: how close are twin-measured gradients to exact ones, as a function of dI?

A 4-16-16-3 MTJ network with fixed random weights sees the Iris training set. Its exact weight
gradients come from autograd of the noise-free device formula (:func:`devices.mtj.voltage`) of the
very neuron instances the backend simulates; its AFD gradients come from the backend's twin reads.
The cosine similarity between the two is swept over dI for three device sets:

* ``ideal``: no variability, no read noise (only the truncation error O(dI f'') remains);
* ``device``: the configured devices (variability, read noise, twin mismatch, calibration);
* ``independent``: as ``device`` but every twin drawn independently of its neuron.

Small dI: read noise / dI dominates; large dI: truncation dominates; the best dI sits between.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from spinlearn import data, plots
from spinlearn._fields import Validated, param
from spinlearn.devices import mtj
from spinlearn.errors import ConfigError
from spinlearn.experiments.common import ExperimentConfig, make_backend
from spinlearn.experiments.registry import Experiment, RunContext, SeedResult, register, threshold
from spinlearn.hardware import SimulatedBackend
from spinlearn.learning.afd import AFDConfig
from spinlearn.nn import MTJActivation, device_keys, mlp

DTYPE = torch.float64  # dI down to 1e-10 A needs double precision to show the truncation regime


@dataclass(frozen=True)
class SweepConfig(Validated):
    """The dI sweep."""

    delta_i_min_a: float = param(1e-10, "smallest dI (A)", gt=0, le=1)
    delta_i_max_a: float = param(1e-3, "largest dI (A)", gt=0, le=1)
    points: int = param(29, "dI values, log-spaced", ge=2, le=1000)
    hidden: tuple[int, ...] = param((16, 16), "hidden layer widths", ge=1, le=10_000, min_len=1)


@dataclass(frozen=True)
class GradcheckConfig(ExperimentConfig):
    afd: AFDConfig = dataclasses.field(default_factory=AFDConfig)
    sweep: SweepConfig = dataclasses.field(default_factory=SweepConfig)


class FormulaMTJ(nn.Module):
    """Reference activation: the noise-free device formula, differentiated by autograd."""

    def __init__(self, pop: mtj.MTJPopulation, params: mtj.MTJParams) -> None:
        super().__init__()
        self.pop, self.params = pop, params

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return mtj.voltage(z * self.params.current_scale_a, self.pop) / self.params.voltage_scale_v


def _gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def _cosine(cfg: GradcheckConfig, device_cfg, delta_i: float, ctx: RunContext, batch) -> float:
    sizes = [4, *cfg.sweep.hidden, 3]
    run_ctx = RunContext(ctx.seed, ctx.device, ctx.out_dir)  # fresh generators: same devices per dI
    backend = make_backend(device_cfg, run_ctx, DTYPE)
    assert isinstance(backend, SimulatedBackend)  # the exact reference needs the simulated instances
    afd_cfg = dataclasses.replace(cfg.afd, delta_i_a=delta_i)

    def afd_act(width: int, k: int) -> nn.Module:
        return MTJActivation(width, backend, f"hidden{k}", afd_cfg, DTYPE, ctx.device)

    def exact_act(width: int, k: int) -> nn.Module:
        return FormulaMTJ(backend.population(f"hidden{k}"), backend.params)

    afd_net = mlp(sizes, afd_act, run_ctx.cpu_generator).to(ctx.device, DTYPE)
    exact_net = mlp(sizes, exact_act, torch.Generator().manual_seed(0)).to(ctx.device, DTYPE)
    chip = device_keys(afd_net)  # the formula layers hold no devices: copy the linear weights only
    exact_net.load_state_dict({k: v for k, v in afd_net.state_dict().items() if k not in chip})
    g_afd = _gradients(afd_net, *batch)
    g_exact = _gradients(exact_net, *batch)
    return float(nn.functional.cosine_similarity(g_afd, g_exact, dim=0))


def run(cfg: GradcheckConfig, ctx: RunContext) -> SeedResult:
    if cfg.sweep.delta_i_max_a <= cfg.sweep.delta_i_min_a:
        raise ConfigError("sweep.delta_i_max_a must be larger than sweep.delta_i_min_a")
    (x, y), _ = data.iris(ctx.seed, cfg.data.test_fraction, ctx.device)
    batch = (x.to(DTYPE), y)
    cases = {
        "ideal": dataclasses.replace(cfg.device, variability=0.0, read_noise_v=0.0, twin_mismatch=0.0),
        "device": cfg.device,
        "independent": dataclasses.replace(cfg.device, twin_mismatch=None),
    }
    lo, hi = math.log10(cfg.sweep.delta_i_min_a), math.log10(cfg.sweep.delta_i_max_a)
    history = []
    for k in range(cfg.sweep.points):
        delta_i = 10 ** (lo + (hi - lo) * k / (cfg.sweep.points - 1))
        record = {"delta_i_a": delta_i}
        for case, device_cfg in cases.items():
            record[f"cosine_{case}"] = _cosine(cfg, device_cfg, delta_i, ctx, batch)
        history.append(record)
        ctx.on_epoch(record)
    metrics = {}
    for case, suffix in (
        ("device", ""),
        ("ideal", "_ideal"),
        ("independent", "_independent_twins"),
    ):
        best = max(history, key=lambda r, c=case: r[f"cosine_{c}"])
        metrics[f"cosine_best{suffix}"] = best[f"cosine_{case}"]
        metrics[f"delta_i_best{suffix}"] = best["delta_i_a"]
    return SeedResult(metrics, history)


def plot(results: list[SeedResult], cfg: GradcheckConfig, out: Path) -> list[Path]:
    return [plots.gradcheck(results[0].history, out / "gradcheck.png")]


register(
    Experiment(
        name="afd-gradcheck",
        summary="cosine(AFD gradient, exact gradient) over a dI sweep: noise vs truncation regimes",
        config_cls=GradcheckConfig,
        run=run,
        plot=plot,
        targets=(threshold("cosine_best", 0.999),),
        epochs_of=lambda cfg: cfg.sweep.points,
        quick={"sweep.points": 15},
    )
)
