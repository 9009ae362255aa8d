"""Device physics, one device kind per module, vectorised over populations (pure torch)."""

from spinlearn.devices.mtj import MTJ, MTJParams, MTJPopulation
from spinlearn.devices.smtj import SMTJ, SMTJParams
from spinlearn.devices.texture import TextureFilm, TextureParams

DEVICES = {"mtj": MTJ, "smtj": SMTJ, "texture": TextureFilm}

__all__ = [
    "DEVICES",
    "MTJ",
    "SMTJ",
    "MTJParams",
    "MTJPopulation",
    "SMTJParams",
    "TextureFilm",
    "TextureParams",
]
