"""Learning rules that run on device physics."""

from spinlearn.learning.afd import AFDConfig, TwinCalibration, measured_slope, twin_derivative

RULES = {"afd": AFDConfig}

__all__ = ["RULES", "AFDConfig", "TwinCalibration", "measured_slope", "twin_derivative"]
