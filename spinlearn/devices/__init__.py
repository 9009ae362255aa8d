"""Device physics, one device kind per module, vectorised over populations (pure torch).

Each module holds a device's equations with their units and source tags: :mod:`.mtj` (the neuron
MTJ and its twin), :mod:`.smtj` (the stochastic MTJ, a noise source; the noise streams it gives
node perturbation in :mod:`.smtj_noise`), :mod:`.domain_wall` (the domain-wall synapse) and
:mod:`.texture` (the magnetic-texture film of the Hopfield network).
"""

from spinlearn.devices.domain_wall import DomainWall, DWParams
from spinlearn.devices.mtj import MTJ, MTJParams, MTJPopulation
from spinlearn.devices.smtj import SMTJ, SMTJParams
from spinlearn.devices.texture import TextureFilm, TextureParams

DEVICES = {"mtj": MTJ, "smtj": SMTJ, "domain_wall": DomainWall, "texture": TextureFilm}

__all__ = [
    "DEVICES",
    "MTJ",
    "SMTJ",
    "DWParams",
    "DomainWall",
    "MTJParams",
    "MTJPopulation",
    "SMTJParams",
    "TextureFilm",
    "TextureParams",
]
