"""``python -m benchmarks profile NAME``: where a benchmark's step spends its time, op by op.

Each variant of the benchmark (the device rule and the digital step it replaces) runs a few steps
under :mod:`torch.profiler`; the ten ops with the most self time are printed with their share of
the variant's wall time. The entry points of the fused kernels are labelled
``kernel: <module>.<function>`` (their calls are wrapped in :func:`torch.profiler.record_function`
for the profile; a label covers the eager passes too where those run instead); time that no op or
kernel accounts for (Python between them) is printed as ``(outside torch ops)``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import time
from collections.abc import Callable, Iterator

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks import afd_vs_torch, danp_vs_bp, dw_sgld_vs_sgd, hopfield_n1000, train_seconds

TOP = 10
# the fused kernels' entry points, (module, attribute path): labelled in the profile where present
KERNELS = (
    ("spinlearn.learning.afd_fused", "FusedAFD.__call__"),
    ("spinlearn.learning.sgld_fused", "program_window"),
    ("spinlearn.learning.sgld_fused", "peaks"),
    ("spinlearn.hardware.dw_bank", "SynapseBank.rebalance"),
    ("spinlearn.devices._texture_fused", "pulses"),
    ("spinlearn.devices._texture_fused", "write_back"),
    ("spinlearn.devices.smtj_noise", "_telegraph_fused"),
)


@contextlib.contextmanager
def labelled_kernels() -> Iterator[None]:
    """Wrap each of :data:`KERNELS` that exists in a :func:`torch.profiler.record_function` named
    after it, and restore them on exit."""
    restore = []
    for module_name, path in KERNELS:
        try:
            owner = importlib.import_module(module_name)
        except ImportError:
            continue
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        original = getattr(owner, name, None) if owner is not None else None
        if original is None:
            continue
        label = f"kernel: {module_name.rsplit('.', 1)[-1]}.{path}"

        def wrapped(*args, _original=original, _label=label, **kwargs):
            with torch.profiler.record_function(_label):
                return _original(*args, **kwargs)

        setattr(owner, name, functools.wraps(original)(wrapped))
        restore.append((owner, name, original))
    try:
        yield
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)


def _afd(kind: str) -> Callable[[], None]:
    net = afd_vs_torch.mnist_afd_network()
    model = afd_vs_torch._model(kind, net.sizes, 1)
    optimizer = afd_vs_torch.make_optimizer(model, net.train)
    x, y = afd_vs_torch._data(net, 10)
    return lambda: train_seconds(model, optimizer, x, y, net.batch)


def _dw(kind: str) -> Callable[[], None]:
    model, optimizer = dw_sgld_vs_sgd._variant(kind)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(dw_sgld_vs_sgd.BATCH * 10, dw_sgld_vs_sgd.SIZES[0], generator=gen)
    y = torch.randint(0, dw_sgld_vs_sgd.SIZES[-1], (len(x),), generator=gen)
    return lambda: train_seconds(model, optimizer, x, y, dw_sgld_vs_sgd.BATCH)


def _danp(kind: str) -> Callable[[], None]:
    step = danp_vs_bp._variant(kind)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(danp_vs_bp.BATCH, danp_vs_bp.SIZES[0], generator=gen)
    y = torch.randint(0, danp_vs_bp.SIZES[-1], (danp_vs_bp.BATCH,), generator=gen)
    return lambda: [step(x, y) for _ in range(10)]


def _hopfield(kind: str) -> Callable[[], None]:
    return lambda: hopfield_n1000._once(kind, 0)


# benchmark -> (how to build a variant's work, the variants: device rule first)
PROFILED = {
    "afd_vs_torch": (_afd, ("afd", "tanh")),
    "dw_sgld_vs_sgd": (_dw, ("dw_sgld", "sgd")),
    "danp_vs_bp": (_danp, ("danp", "bp_same")),
    "hopfield_n1000": (_hopfield, ("texture", "hebbian")),
}


def top_ops(work: Callable[[], None], top: int = TOP) -> dict:
    """Run ``work`` once to warm up, then once under the profiler: the ``top`` ops by self CPU
    time, each with its share of the wall time, and the share no op accounts for."""
    work()
    with labelled_kernels(), profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        work()
        wall_us = (time.perf_counter() - start) * 1e6
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    # With intra-op threads the ops' times may add up to more than the wall time: shares are of
    # the sum of both, so that they stay comparable between variants.
    in_ops = sum(e.self_cpu_time_total for e in events)
    outside = max(wall_us - in_ops, 0.0)
    total = in_ops + outside
    rows = [(e.key, e.count, e.self_cpu_time_total / total) for e in events[:top]]
    return {"wall_ms": wall_us / 1e3, "outside_share": outside / total, "ops": rows}


def run(names: list[str] | None = None) -> dict:
    """Profile every variant of ``names`` (default: all of :data:`PROFILED`); print and return the tables."""
    results = {}
    for name in names or list(PROFILED):
        build, variants = PROFILED[name]
        for kind in variants:
            result = top_ops(build(kind))
            results[f"{name}/{kind}"] = result
            print(f"{name} / {kind}: {result['wall_ms']:.1f} ms profiled")
            print(f"  {'(outside torch ops)':<40} {'':>6} {100 * result['outside_share']:5.1f} %")
            for op, count, share in result["ops"]:
                print(f"  {op:<40} {count:>6} {100 * share:5.1f} %")
    return results
