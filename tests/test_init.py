"""The public API and the layering: what a user imports, and which layer may import which."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import spinlearn

PACKAGE = Path(spinlearn.__file__).parent
#: devices -> hardware -> learning -> nn -> experiments -> the runner and reports -> the CLI; the
#: small support modules (config, data, io, errors, energy, plots, noise, metrics, checkpoint,
#: training) sit below all of them.
RANK = {"devices": 1, "hardware": 2, "learning": 3, "nn": 4, "experiments": 5, "runner": 6, "report": 6}
RANK.update({"cli": 7, "__main__": 7})
RANK.update({"sweep": 6})  # sweeps run the runner

EXPORTED = {
    "MTJ", "MTJParams", "SMTJ", "SMTJParams", "DomainWall", "DWParams", "TextureFilm", "TextureParams",
    "Backend", "SimulatedBackend", "VisaBackend", "DeviceProfile", "DWSynapses",
    "AFDConfig", "DWSGLD", "SGLD", "SGLDConfig", "PosteriorSamples", "DANPConfig", "DANPNetwork",
    "NoiseConfig", "danp_step", "node_perturbation_step", "AdamDirection", "train_texture", "recall",
    "MTJActivation", "DWLinear", "DWConv2d", "Layers", "mlp",
    "Ledger", "EnergyConfig", "ConfigError", "DataError", "UserInputError", "TrainingDiverged",
    "Checkpoint", "EXPERIMENTS", "get_experiment", "run_experiment",
    "transfer_weights", "track_energy", "load_run", "sweep",
}  # fmt: skip


def rank(module: str) -> int:
    parts = module.split(".")
    return RANK.get(parts[1], 0) if len(parts) > 1 else 0


def imports(path: Path) -> list[str]:
    """Every spinlearn module ``path`` imports, at any depth of its code (lazy imports count too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spinlearn"):
            if node.module == "spinlearn":
                found += [f"spinlearn.{a.name}" for a in node.names]
            else:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("spinlearn")]
    return found


def test_every_exported_name_resolves_and_the_list_is_pinned():
    assert set(spinlearn.__all__) == EXPORTED | {"__version__"}
    for name in EXPORTED:
        assert getattr(spinlearn, name) is not None, name
    assert spinlearn.get_experiment("iris-afd").name == "iris-afd"


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        if module == "spinlearn":
            continue  # the package's names are resolved lazily, by strings
        upward += [(module, t) for t in imports(path) if rank(t) > rank(module)]
    assert upward == []


def test_the_learning_rules_do_not_import_the_torch_modules():
    for path in (PACKAGE / "learning").glob("*.py"):
        assert not [t for t in imports(path) if t.startswith("spinlearn.nn")], path.name


@pytest.mark.parametrize(
    "layer, above",
    [
        ("spinlearn.devices", ("hardware", "learning", "nn", "experiments")),
        ("spinlearn.hardware", ("learning", "nn", "experiments")),
        ("spinlearn.learning", ("nn", "experiments")),
        ("spinlearn", ("devices", "hardware", "learning", "nn", "experiments")),
    ],
)
def test_importing_a_layer_loads_nothing_above_it(layer, above):
    code = f"import sys, {layer}; print(sorted(m for m in sys.modules if m.startswith('spinlearn.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in above:
        assert f"'spinlearn.{name}'" not in loaded, (layer, name)
