"""Learning rules that run on device physics."""

from spinlearn.learning.afd import AFDConfig, MeasuredSlope, TwinCalibration, twin_derivative

RULES = {"afd": AFDConfig}

__all__ = ["RULES", "AFDConfig", "MeasuredSlope", "TwinCalibration", "twin_derivative"]
