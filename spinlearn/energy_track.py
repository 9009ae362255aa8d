"""Energy of any model built from spinlearn's layers: one call attaches a ledger and counts the work.

::

    with spinlearn.track_energy(model, optimizer) as meter:    # phase "train"
        for x, y in batches:
            ...                                                 # forward, backward, optimizer.step()
        with meter.phase("evaluation"), torch.no_grad():
            model(x_test)
    print(meter.summary())

Inside the block, every backend behind the model's MTJ neurons and every optimizer given that books
its own device events (:class:`~spinlearn.learning.DWSGLD`'s pulses) feed ``meter.ledger``; what
they fed before is restored on exit. A twin calibration that ran when a layer was built, before
the block, is booked as ``calibration`` from the layer's own record of it.

The first forward pass is counted with torch's ``FlopCounterMode``: every multiply-accumulate of
the model per sample, whatever the layer (``nn.Linear``, :class:`~spinlearn.nn.DWLinear`, DW
convolutions, ...), and the activation units (``nn.Tanh``-like modules and MTJ neurons, each output
element one unit). From them:

* the **digital baseline**: the same network trained by backprop on a digital accelerator, with
  the samples the block trained on (forward passes with gradients in phase ``train``):
  3 MACs per weight use and sample, 2 activation evaluations per unit and sample
  (:func:`spinlearn.energy.digital_baseline_train_j`);
* the model's own **digital work**: layers that stay digital (``nn.Linear``, ``nn.Conv*``) and
  digital activations are booked as ``mac``/``sram``/``activation`` events, 3x in training (forward,
  input gradient, weight gradient) and 1x in evaluation, as the registered experiments book them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spinlearn.energy import EnergyConfig, Ledger, digital_baseline_train_j, summary_of

#: torch modules that a digital accelerator evaluates as one activation unit per output element
DIGITAL_ACTIVATIONS = (
    nn.Tanh,
    nn.Sigmoid,
    nn.ReLU,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.Softplus,
    nn.Hardtanh,
)
DIGITAL_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class EnergyMeter:
    """What :func:`track_energy` yields: the ``ledger``, the counts per sample (``macs_per_sample``,
    ``digital_macs_per_sample``, ``activations_per_sample``, ``digital_activations_per_sample``,
    known after the first forward pass) and the samples seen per phase."""

    def __init__(self, model: nn.Module, ledger: Ledger) -> None:
        self.model = model
        self.ledger = ledger
        self.macs_per_sample: int | None = None
        self.digital_macs_per_sample = 0
        self.activations_per_sample = 0
        self.digital_activations_per_sample = 0
        self.samples: dict[str, int] = {}
        self._counter: FlopCounterMode | None = None
        self._units: dict[str, int] = {}

    def phase(self, name: str):
        """A block booked under phase ``name`` (``train``, ``evaluation``, ``calibration``, ...)."""
        return self.ledger.in_phase(name)

    def summary(self, eval_samples: int | None = None) -> dict[str, float]:
        """The flat energy summary (as ``summary.json``'s ``energy``): totals, breakdown, baseline.
        ``inference_j`` is per evaluated sample (``eval_samples``, default: those counted)."""
        if self.macs_per_sample is None:
            raise RuntimeError("the model never ran a forward pass inside track_energy")
        trained = self.samples.get("train", 0)
        baseline = digital_baseline_train_j(
            self.macs_per_sample, self.activations_per_sample, trained, self.ledger.config
        )
        evaluated = self.samples.get("evaluation", 0) if eval_samples is None else eval_samples
        return summary_of(self.ledger, baseline, evaluated)

    # --- hooks ---------------------------------------------------------------------------------
    def _before(self, module: nn.Module, args) -> None:
        batch = _batch(args)
        phase = self.ledger.phase
        if phase == "train" and not torch.is_grad_enabled():
            phase = "train (no grad)"  # a score inside the training block is not training
        self.samples[phase] = self.samples.get(phase, 0) + batch
        if self.macs_per_sample is None and self._counter is None:
            self._counter = FlopCounterMode(display=False, depth=None)
            self._counter.__enter__()
            self._batch = batch

    def _after(self, module: nn.Module, args, output) -> None:
        if self._counter is not None:
            counter, self._counter = self._counter, None
            counter.__exit__(None, None, None)
            self._measure(counter, self._batch)
        macs = self.digital_macs_per_sample * _batch(args)
        units = self.digital_activations_per_sample * _batch(args)
        training = self.ledger.phase == "train" and torch.is_grad_enabled()
        times = 3 if training else 1
        if macs:
            self.ledger.digital_macs(times * macs)
        if units:
            self.ledger.digital_activations((2 if training else 1) * units)

    def _measure(self, counter: FlopCounterMode, batch: int) -> None:
        per_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
        root = type(self.model).__name__
        self.macs_per_sample = counter.get_total_flops() // (2 * batch)
        digital = 0
        for name, module in self.model.named_modules():
            if isinstance(module, DIGITAL_LAYERS):
                digital += per_module.get(f"{root}.{name}" if name else root, 0)
        self.digital_macs_per_sample = digital // (2 * batch)
        self.activations_per_sample = sum(self._units.values()) // batch
        self.digital_activations_per_sample = (
            sum(n for name, n in self._units.items() if name.startswith("digital:")) // batch
        )


def _batch(args) -> int:
    first = args[0] if args else None
    return int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() > 0 else 1


@contextlib.contextmanager
def track_energy(
    model: nn.Module, *optimizers: torch.optim.Optimizer, config: EnergyConfig | None = None
) -> Iterator[EnergyMeter]:
    """Attach one energy ledger to ``model``'s devices and ``optimizers`` for the block (module doc);
    the block is phase ``train``. Yields the :class:`EnergyMeter`."""
    ledger = Ledger(config)
    meter = EnergyMeter(model, ledger)
    backends = {id(b): b for m in model.modules() if (b := getattr(m, "backend", None)) is not None}
    holders = [*backends.values(), *(o for o in optimizers if hasattr(o, "ledger"))]
    previous = [h.ledger for h in holders]
    handles = [
        model.register_forward_pre_hook(meter._before),
        model.register_forward_hook(meter._after),
    ]
    for name, module in model.named_modules():
        kind = "digital:" if isinstance(module, DIGITAL_ACTIVATIONS) else "device:"
        if isinstance(module, DIGITAL_ACTIVATIONS) or getattr(module, "IS_ACTIVATION", False):
            handles.append(module.register_forward_hook(_unit_counter(meter, kind + name)))
    for module in model.modules():
        record = getattr(module, "calibration_reads", None)
        if record is not None:  # (count, sum of |I V|) of a calibration made before the block
            with ledger.in_phase("calibration"):
                ledger.device_reads_summed(*record)
    try:
        for holder in holders:
            holder.ledger = ledger
        with ledger.in_phase("train"):
            yield meter
    finally:
        for handle in handles:
            handle.remove()
        for holder, earlier in zip(holders, previous, strict=True):
            holder.ledger = earlier


def _unit_counter(meter: EnergyMeter, key: str):
    def count(module: nn.Module, args, output) -> None:
        if meter.macs_per_sample is None and isinstance(output, torch.Tensor):
            meter._units[key] = output.numel()

    return count
