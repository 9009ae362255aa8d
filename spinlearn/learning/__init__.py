"""Learning rules that run on device physics: analog finite differences (:mod:`.afd`), Langevin
dynamics through domain-wall pulses (:mod:`.sgld`, its samples in :mod:`.posterior`), decorrelated
node perturbation with device noise (:mod:`.danp`, its noise sources in :mod:`.danp_noise`; on any
layer stack, a chip's say, :mod:`.perturbation`, stepped through Adam's moments, :mod:`.moments`) and
the texture film's own learning (:mod:`.hopfield`)."""

from spinlearn.learning.afd import AFDConfig, TwinCalibration, measured_slope, twin_derivative
from spinlearn.learning.danp import DANPConfig, DANPNetwork, backprop_gradients, danp_step
from spinlearn.learning.danp_noise import NoiseConfig
from spinlearn.learning.hopfield import recall, train_texture
from spinlearn.learning.moments import AdamDirection
from spinlearn.learning.perturbation import node_perturbation_step
from spinlearn.learning.posterior import PosteriorSamples
from spinlearn.learning.sgld import DWSGLD, SGLD, SGLDConfig

RULES = {"afd": AFDConfig, "dw-sgld": SGLDConfig, "danp": DANPConfig}

__all__ = [
    "DWSGLD",
    "RULES",
    "SGLD",
    "AFDConfig",
    "AdamDirection",
    "DANPConfig",
    "DANPNetwork",
    "NoiseConfig",
    "PosteriorSamples",
    "SGLDConfig",
    "TwinCalibration",
    "backprop_gradients",
    "danp_step",
    "measured_slope",
    "node_perturbation_step",
    "recall",
    "train_texture",
    "twin_derivative",
]
