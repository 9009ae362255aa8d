"""spinlearn: train neural networks on spintronic hardware with the learning rule its physics offers.

Public API::

    import torch

    from spinlearn import devices, hardware, nn, learning
    neuron = devices.MTJ(devices.MTJParams(tmr0=1.2), variability=0.1)
    backend = hardware.SimulatedBackend(neuron, torch.Generator().manual_seed(0))
    layer = nn.MTJActivation(16, backend, "hidden0", learning.AFDConfig(delta_i_a=5e-6))
"""

__version__ = "0.1.0"

from spinlearn import devices, hardware, learning, nn

__all__ = ["__version__", "devices", "hardware", "learning", "nn"]
