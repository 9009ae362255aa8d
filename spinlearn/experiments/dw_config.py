"""The domain-wall study's configuration: data, schedule, model, posterior, comparisons, sweep,
and for the all-spintronic chip (``model.activation=mtj``) its MTJ neurons."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from spinlearn import _user_data
from spinlearn._fields import Validated, param
from spinlearn.config import DataConfig, batch_size_param, epochs_param, lr_decay_param, lr_final_param
from spinlearn.devices.domain_wall import DomainWall, DWParams
from spinlearn.energy import EnergyConfig
from spinlearn.experiments.common import DeviceConfig
from spinlearn.hardware.dw_profile import domain_wall
from spinlearn.learning.afd import AFDConfig
from spinlearn.learning.posterior import PosteriorSamples
from spinlearn.learning.sgld import SGLDConfig

PAPER = "Dalgaty et al. 2023, arXiv:2312.02771"
CLASSES = 10


@dataclass(frozen=True)
class DWData(DataConfig):
    dataset: str = param(
        "mnist",
        "mnist, digits (8x8, quick), iris, cifar10 (from data.dir), or your own file: csv or npz (data.path)",
        choices=("mnist", "digits", "iris", "cifar10", *_user_data.FORMATS),
    )
    train_subset: int = param(0, "train on the first N training samples only (0: all)", ge=0)
    eval_subset: int = param(2000, "test samples scored after every epoch for the curves (0: all)", ge=0)


@dataclass(frozen=True)
class DWTrainConfig(Validated):
    """Schedule shared by every variant (lr on the mean minibatch loss; see learning.sgld)."""

    epochs: int = epochs_param(8)
    batch_size: int = batch_size_param(128)
    lr: float = param(0.1, "learning rate eta (drift -eta grad of the mean loss)", gt=0, le=100)
    lr_decay: str = lr_decay_param("cosine")
    lr_final: float = lr_final_param(0.1)


@dataclass(frozen=True)
class DWModelConfig(Validated):
    arch: str = param("mlp", "mlp or resnet18 (CIFAR variant)", choices=("mlp", "resnet18"))
    hidden: tuple[int, ...] = param((256, 256), "MLP hidden widths", ge=1, le=100_000, min_len=1)
    width: float = param(0.25, "ResNet-18 width multiplier (1: 64-128-256-512 channels)", gt=0, le=8)
    weight_range: float = param(4.0, "w_max of a DW layer / its initial weight bound", gt=0, le=1000)
    activation: str = param(
        "relu",
        "MLP hidden units: relu, tanh (digital) or mtj (MTJ neurons trained by AFD: the all-spintronic "
        "chip; its float variants use tanh)",
        choices=("relu", "tanh", "mtj"),
    )


@dataclass(frozen=True)
class PosteriorConfig(Validated):
    samples: int = param(8, "thinned weight samples averaged for the posterior predictive", ge=1, le=1000)
    burn_in: float = param(0.5, "fraction of the training steps before the first sample", ge=0, lt=1)

    def chain(self, steps: int) -> PosteriorSamples:
        """What a chain of ``steps`` steps keeps: ``samples`` states, evenly thinned after burn-in."""
        burn_in = int(self.burn_in * steps)
        return PosteriorSamples(burn_in, max(1, (steps - burn_in) // self.samples), self.samples)


@dataclass(frozen=True)
class CompareConfig(Validated):
    float_sgld: bool = param(True, "floating-point SGLD (software noise), same schedule")
    sgd: bool = param(False, "plain SGD, same schedule")


@dataclass(frozen=True)
class OODConfig(Validated):
    """Inputs no class fits, scored by predictive entropy (:mod:`spinlearn.experiments.ood`)."""

    size: int = param(
        2000, "generated noise and shape images, and rotated test images, per kind", ge=1, le=1_000_000
    )
    held_out: bool = param(
        True,
        "train DW-SGLD (and SGD with compare.sgd) again without one class and score that class's test "
        "inputs as out of distribution (two more trainings)",
    )
    held_out_class: int | None = param(
        None, "the class left out (null: the seed's, seed mod the number of classes)", ge=0
    )


@dataclass(frozen=True)
class SweepConfig(Validated):
    bits: tuple[int, ...] = param((), "update precisions to sweep (dw-bits-sweep)", ge=2, le=16)


@dataclass(frozen=True)
class DWDeviceConfig(DWParams):
    """The domain-wall synapses: the model's parameters, or a profile of measured devices."""

    profile: str | None = param(
        None,
        "domain-wall profile YAML from `spinlearn fit dw`: its median device replaces the parameters "
        "it holds (threshold, velocity, diffusion, conductance range, edge, spread, read noise)",
    )

    def domain_wall(self) -> DomainWall:
        """The kind of synapse these settings describe (the profile's, when one is named)."""
        params = self.as_base(DWParams)
        return domain_wall(self.profile, params) if self.profile else DomainWall(params)


#: A cold posterior (T < 1), as is customary for SGLD on neural networks (Wenzel et al. 2020): at T = 1
#: the MLP stays ~1 pp below SGD on MNIST (0.965 after 6 epochs, float and DW alike).
COLD = 0.1


@dataclass(frozen=True)
class DWConfig:
    device: DWDeviceConfig = dataclasses.field(default_factory=DWDeviceConfig)
    sgld: SGLDConfig = dataclasses.field(default_factory=lambda: SGLDConfig(temperature=COLD))
    data: DWData = dataclasses.field(default_factory=DWData)
    train: DWTrainConfig = dataclasses.field(default_factory=DWTrainConfig)
    model: DWModelConfig = dataclasses.field(default_factory=DWModelConfig)
    posterior: PosteriorConfig = dataclasses.field(default_factory=PosteriorConfig)
    compare: CompareConfig = dataclasses.field(default_factory=CompareConfig)
    sweep: SweepConfig = dataclasses.field(default_factory=SweepConfig)
    ood: OODConfig = dataclasses.field(default_factory=OODConfig)
    energy: EnergyConfig = dataclasses.field(default_factory=EnergyConfig)
    neuron: DeviceConfig = dataclasses.field(default_factory=DeviceConfig)  # model.activation=mtj
    afd: AFDConfig = dataclasses.field(default_factory=AFDConfig)
