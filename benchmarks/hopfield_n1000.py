"""``hopfield_n1000``: texture self-learning + recall / Hebbian matrix + the same recall, at N = 1000.

Both variants store the same 100 random patterns in a 1000-neuron network and recall 100 probes
(10 % of the bits flipped) with the default asynchronous dynamics. The texture variant trains a
simulated film for the default 10 epochs of voltage pulses (device noise included) and reads its
conductances; the Hebbian one computes the outer-product matrix. Repetitions alternate between the
variants so that machine noise hits both alike; the ratio is of the medians after a warm-up.
"""

from __future__ import annotations

import statistics
import time

import torch

from benchmarks import alternating, ratio_spread, synchronize
from spinlearn.devices.texture import TextureFilm, TextureParams
from spinlearn.experiments.hopfield import HopfieldTrainConfig, random_patterns
from spinlearn.learning import hopfield

N, PATTERNS, PROBES, REPEATS = 1000, 100, 100, 5


def _once(kind: str, seed: int, device: str = "cpu") -> dict[str, float]:
    gen = torch.Generator().manual_seed(seed)
    patterns = random_patterns(PATTERNS, N, gen, "cpu")
    probes, index = hopfield.flip_probes(patterns[:PROBES], 1, 0.1, 0.1, gen)
    patterns, probes = patterns.to(device), probes.to(device)
    film_gen = gen if device == "cpu" else torch.Generator(device).manual_seed(seed)
    synchronize(device)
    start = time.perf_counter()
    if kind == "texture":
        film = TextureFilm(TextureParams(), N, film_gen, device)
        hopfield.train_texture(film, patterns, HopfieldTrainConfig().epochs)
        weights = film.read_weights()
    else:
        weights = hopfield.hebbian(patterns)
    synchronize(device)
    learned = time.perf_counter()
    result = hopfield.recall(weights, probes, "async", gen)
    synchronize(device)
    done = time.perf_counter()
    return {
        "learn_s": learned - start,
        "recall_s": done - learned,
        "total_s": done - start,
        "overlap": float(hopfield.overlap(result.states, patterns[index]).mean()),
    }


def run(device: str = "cpu") -> dict:
    # The first repetition, discarded, warms up allocators and kernels.
    times = alternating(("texture", "hebbian"), lambda kind, seed: _once(kind, seed, device), REPEATS)

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in times[kind])

    totals = {kind: [r["total_s"] for r in runs] for kind, runs in times.items()}
    return {
        "benchmark": "hopfield_n1000",
        "ratio": median("texture", "total_s") / median("hebbian", "total_s"),
        "ratio_rounds": ratio_spread(totals, "texture", "hebbian"),
        "device": device,
        **{f"{kind}_{key}_median": round(median(kind, key), 4) for kind in times for key in times[kind][0]},
        "repeats": REPEATS,
        "threads": torch.get_num_threads(),
    }
