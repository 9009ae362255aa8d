"""Experiments, one module per study; importing this package registers them all."""

from spinlearn.experiments import chip, danp, dw, gradcheck, hopfield, iris, mnist  # noqa: F401  (registration side effects)
from spinlearn.experiments.registry import EXPERIMENTS, Experiment, SeedResult, Target, get

__all__ = ["EXPERIMENTS", "Experiment", "SeedResult", "Target", "get"]
