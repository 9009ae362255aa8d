r"""Energy and time ledger: the joules a run's physics spent, beside a digital baseline.

Backends and the training loop feed the ledger with events as they happen; per-event energies and
durations come from :class:`EnergyConfig` (``--set energy.*``), whose defaults are documented below.

Events and their energy:

* **MTJ read** (neuron or twin): :math:`E = |I V|\,t_\mathrm{read}`, summed over every read element,
  plus one DAC conversion (to set the current) and one ADC conversion (to read the voltage).
* **Digital MAC** (multiply-accumulate of the digital weight layers): ``mac_j`` each; each MAC also
  reads two 32-bit words from SRAM (``sram_word_j`` each).
* **Digital activation** (tanh and its derivative in the baselines): ``activation_j`` each.

Phases: ``calibration`` (twin mismatch sweep, once), ``train`` (the training steps),
``evaluation`` (test-set inference after each epoch; ``inference_j`` is its cost per sample),
``diagnostics`` (anything else, e.g. plotting sweeps; not reported as a cost).
``train_j`` is the training steps only, so it scales with epochs; ``calibration_j`` is reported beside it.

Digital baseline: the same network and epochs trained by backprop on a digital accelerator:
3 MACs per weight per training sample (forward, input gradient, weight gradient) with their SRAM
reads, and 2 activation evaluations (value and derivative) per hidden neuron per sample.

Defaults and sources: ``mac_j`` 4.6 pJ (32-bit float multiply 3.7 pJ + add 0.9 pJ) and
``sram_word_j`` 5 pJ (32-bit read from an 8 KB SRAM) are the 45 nm figures of M. Horowitz,
"Computing's energy problem", ISSCC 2014. ``adc_j`` 1 pJ (8-bit SAR ADC, order of magnitude from
B. Murmann's ADC performance survey), ``dac_j`` 0.5 pJ, ``activation_j`` 23 pJ (five MACs for a
polynomial tanh) and ``t_read_s`` 10 ns (a typical MRAM read pulse) are our reconstructions [I].
Limits: no wiring, peripheral, leakage or data-movement energy beyond the SRAM reads above; the
device figure is the Joule energy drawn through the junctions during the read pulses.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from spinlearn._fields import Validated, param

PHASES = ("calibration", "train", "evaluation", "diagnostics")


@dataclass(frozen=True)
class EnergyConfig(Validated):
    """Per-event energies and durations (override per technology with ``--set energy.*``)."""

    t_read_s: float = param(10e-9, "duration of one MTJ read pulse (s)", gt=0, le=1)
    adc_j: float = param(1e-12, "energy of one ADC conversion (J)", ge=0, le=1e-6)
    dac_j: float = param(0.5e-12, "energy of one DAC conversion (J)", ge=0, le=1e-6)
    mac_j: float = param(4.6e-12, "energy of one digital 32-bit float MAC (J), Horowitz 2014", ge=0, le=1e-6)
    sram_word_j: float = param(5e-12, "energy of one 32-bit SRAM read (J), Horowitz 2014", ge=0, le=1e-6)
    activation_j: float = param(23e-12, "energy of one digital tanh or derivative (J)", ge=0, le=1e-6)


class Ledger:
    """Energy (J), counts and device time (s) per phase and category."""

    def __init__(self, config: EnergyConfig | None = None) -> None:
        self.config = config or EnergyConfig()
        self.phase = "diagnostics"  # reads outside training and test evaluation (sweeps, extra scores)
        self.joules: dict[str, dict[str, float]] = {p: defaultdict(float) for p in PHASES}
        self.counts: dict[str, dict[str, int]] = {p: defaultdict(int) for p in PHASES}
        self.read_time_s: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def in_phase(self, phase: str) -> Iterator[Ledger]:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        previous, self.phase = self.phase, phase
        try:
            yield self
        finally:
            self.phase = previous

    def add(self, category: str, count: int, joules: float) -> None:
        self.counts[self.phase][category] += int(count)
        self.joules[self.phase][category] += float(joules)

    def device_reads(self, current_a: torch.Tensor, voltage_v: torch.Tensor) -> None:
        """``current_a.numel()`` MTJ reads: Joule energy through the junctions, one DAC and one ADC each."""
        self.device_reads_summed(current_a.numel(), float((current_a * voltage_v).abs().sum()))

    def device_reads_summed(self, n: int, abs_iv_sum: float) -> None:
        """``n`` MTJ reads whose ``|I V|`` sum to ``abs_iv_sum`` (W): as :meth:`device_reads`."""
        c = self.config
        self.add("mtj_read", n, abs_iv_sum * c.t_read_s)
        self.add("dac", n, n * c.dac_j)
        self.add("adc", n, n * c.adc_j)
        self.read_time_s[self.phase] += n * c.t_read_s

    def digital_macs(self, macs: int) -> None:
        """Digital multiply-accumulates, each with two SRAM word reads."""
        self.add("mac", macs, macs * self.config.mac_j)
        self.add("sram", 2 * macs, 2 * macs * self.config.sram_word_j)

    def digital_activations(self, count: int) -> None:
        self.add("activation", count, count * self.config.activation_j)

    def total(self, phase: str) -> float:
        return sum(self.joules[phase].values())

    def state_dict(self) -> dict:
        """The booked figures as plain dicts (for checkpoints)."""
        return {
            "joules": {p: dict(v) for p, v in self.joules.items()},
            "counts": {p: dict(v) for p, v in self.counts.items()},
            "read_time_s": dict(self.read_time_s),
        }

    def load_state_dict(self, state: dict) -> None:
        for phase in PHASES:
            self.joules[phase] = defaultdict(float, state["joules"].get(phase, {}))
            self.counts[phase] = defaultdict(int, state["counts"].get(phase, {}))
        self.read_time_s = defaultdict(float, state["read_time_s"])


def linear_macs(model: nn.Module) -> int:
    """MACs of one forward pass of one sample through the model's digital ``nn.Linear`` layers."""
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


def dense_macs(model: nn.Module) -> int:
    """MACs of one sample through every dense layer, digital or on devices (any module with
    ``in_features`` and ``out_features``: ``nn.Linear``, ``DWLinear``). For convolutions, whose
    count depends on the input size, :func:`spinlearn.track_energy` counts a forward pass."""
    return sum(
        m.in_features * m.out_features
        for m in model.modules()
        if isinstance(getattr(m, "in_features", None), int)
        and isinstance(getattr(m, "out_features", None), int)
    )


def digital_units(model: nn.Module) -> int:
    """Digital activation units (tanh) in the model."""
    return sum(1 for m in model.modules() if isinstance(m, nn.Tanh))


def hidden_widths(model: nn.Module) -> list[int]:
    """Output widths of every dense layer but the last (digital or on devices): the hidden units."""
    dense = [m for m in model.modules() if hasattr(m, "in_features") and hasattr(m, "out_features")]
    return [m.out_features for m in dense[:-1]]


def digital_baseline_train_j(
    macs_per_sample: int, activations_per_sample: int, samples: int, config: EnergyConfig
) -> float:
    """Backprop on a digital accelerator: 3 MACs (+ 6 SRAM reads) per weight use per sample, and a
    value and a derivative per activation unit per sample."""
    macs = 3 * macs_per_sample * samples
    units = activations_per_sample * samples
    return macs * (config.mac_j + 2 * config.sram_word_j) + 2 * units * config.activation_j


def digital_delta_rule_train_j(n_nodes: int, presentations: int, config: EnergyConfig) -> float:
    """A Hopfield film's learning computed digitally: per pattern presentation the field W s (N^2 MACs)
    and the rank-2 weight update (2 N^2 MACs), each MAC with two SRAM word reads."""
    macs = 3 * n_nodes**2 * presentations
    return macs * (config.mac_j + 2 * config.sram_word_j)


def summarise(ledger: Ledger, model: nn.Module, train_samples: int, eval_samples: int) -> dict[str, float]:
    """Flat energy summary of one seed of an MLP: totals, per-category breakdowns and the digital
    baseline (its dense layers' MACs, a unit per hidden neuron)."""
    baseline = digital_baseline_train_j(
        dense_macs(model), sum(hidden_widths(model)), train_samples, ledger.config
    )
    return summary_of(ledger, baseline, eval_samples)


def summary_of(ledger: Ledger, baseline_j: float, eval_samples: int) -> dict[str, float]:
    """Flat energy summary: the ledger's totals and per-category breakdowns beside ``baseline_j``."""
    out: dict[str, float] = {
        "train_j": ledger.total("train"),
        "calibration_j": ledger.total("calibration"),
        "inference_j": ledger.total("evaluation") / max(eval_samples, 1),
        "digital_baseline_train_j": baseline_j,
        "device_read_time_s": ledger.read_time_s["train"],
    }
    for category, joules in sorted(ledger.joules["train"].items()):
        out[f"train_{category}_j"] = joules
        out[f"train_{category}_count"] = ledger.counts["train"][category]
    for category, joules in sorted(ledger.joules["evaluation"].items()):
        out[f"inference_{category}_j"] = joules / max(eval_samples, 1)
    return out


def table_rows(energy: dict[str, float]) -> list[tuple[str, str]]:
    """(label, value) rows comparing the device run with its digital baseline."""
    ratio = energy["digital_baseline_train_j"] / energy["train_j"] if energy["train_j"] else float("nan")
    rows = [
        ("training (device run)", f"{energy['train_j']:.4g} J"),
        ("digital baseline training", f"{energy['digital_baseline_train_j']:.4g} J"),
        ("baseline / device", f"{ratio:.3g}x"),
        ("calibration (once)", f"{energy['calibration_j']:.4g} J"),
        ("inference, one sample", f"{energy['inference_j']:.4g} J"),
        ("device time (train)", f"{energy['device_read_time_s']:.4g} s"),
    ]
    rows += [(f"  train: {category}", f"{joules:.4g} J") for category, joules in breakdown(energy).items()]
    return rows


def breakdown(energy: dict[str, float]) -> dict[str, float]:
    """Training energy per category (J)."""
    return {
        key[6:-2]: energy[key]
        for key in sorted(energy)
        if key.startswith("train_") and key.endswith("_j") and key != "train_j"
    }
