"""A digits network built by hand from spinlearn's devices, trained on them, metered and saved.

Domain-wall crossbar -> 32 MTJ neurons -> domain-wall crossbar, trained by DW-SGLD (push-pull
pulses carry the Langevin noise; the MTJ twins give f'(I)). Run: ``python examples/digits_chip.py``.
"""

import torch
from torch.nn import functional as F

import spinlearn
from spinlearn import DWSGLD, DWLinear, MTJActivation
from spinlearn.data import digits


def train(seed: int = 0, epochs: int = 1, batch: int = 32, train_size: int | None = None):
    """Train from ``torch.manual_seed(seed)`` on the first ``train_size`` training samples (default
    all); returns (model, test accuracy, programming pulses, energy summary)."""
    torch.manual_seed(seed)  # fixes every number spinlearn draws below
    d = digits(seed)
    x, y = torch.as_tensor(d.x_train[:train_size]), torch.as_tensor(d.y_train[:train_size])
    x_test, y_test = torch.as_tensor(d.x_test), torch.as_tensor(d.y_test)
    model = torch.nn.Sequential(DWLinear(64, 32), MTJActivation(32), DWLinear(32, 10))
    optimizer = DWSGLD(model.parameters(), lr=0.05, data_size=len(x))
    with spinlearn.track_energy(model, optimizer) as meter:
        for _ in range(epochs):
            order = torch.randperm(len(x))
            for first in range(0, len(x), batch):
                idx = order[first : first + batch]
                optimizer.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                optimizer.step()
        with meter.phase("evaluation"), torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return model, accuracy, optimizer.pulses, meter.summary()


if __name__ == "__main__":
    model, accuracy, pulses, energy = train(epochs=3)
    print(f"test accuracy {accuracy:.3f}, {pulses} programming pulses")
    for key in ("train_j", "digital_baseline_train_j", "calibration_j", "inference_j"):
        print(f"{key:<26} {energy[key]:.4g}")
    torch.save(model.state_dict(), "digits_chip.pt")  # the chip: walls, devices, calibration
