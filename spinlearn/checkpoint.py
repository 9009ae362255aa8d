"""Checkpoints: a seed's training state at the end of every epoch, so that ``--resume`` continues a
killed run with the metrics an uninterrupted run gives.

A seed's run is a sequence of *stages* (the variants an experiment trains one after another: the
MTJ network, then its tanh twin; DW-SGLD, then float SGLD). A stage's loop asks
:meth:`Checkpoint.epochs` for its epochs, handing over the objects its training changes (model,
optimizer, backends, ledgers, generators, history). At the end of every epoch the checkpoint
snapshots them, with every earlier stage's final snapshot, into ``OUT/checkpoints/seed<S>.pt``,
written atomically. On resume the experiment's set-up code runs again (it is deterministic in the
seed: the same devices, the same initial weights) and each stage's loop restores its objects from
the checkpoint and continues after the last complete epoch. A stage already finished restores its
final state and trains no more, so the code between stages replays exactly.

An interrupted epoch is trained again from its start: the checkpoint is at epoch granularity, which
is what makes a resumed run's metrics equal to an uninterrupted run's.

Checkpoint files hold tensors and plain containers only and load with
``torch.load(path, weights_only=True)``: a crafted file cannot execute code. What an object
contributes is its ``state_dict()`` (every stateful class of spinlearn has one, as nn.Module and
Optimizer do); a ``torch.Generator`` its state; a list or dict (a history) its items.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spinlearn.errors import UserInputError
from spinlearn.io import write_bytes_atomic

FORMAT = 1  # bumped when the layout of a checkpoint file changes


def _cloned(value: Any) -> Any:
    """A deep copy of a state made of tensors and containers, tensors detached and on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cloned(v) for v in value)
    return copy.copy(value)


def state_of(obj: Any) -> Any:
    """The checkpointable state of ``obj``: tensors and plain containers only (a copy)."""
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if hasattr(obj, "state_dict"):
        return _cloned(obj.state_dict())
    if isinstance(obj, list | dict):
        return _cloned(obj)
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}: give it state_dict()/load_state_dict()")


class Snapshot:
    """The states of some objects (a backend, a generator) at a moment the caller picks: ``take()``
    records them (:func:`state_of`), ``states`` holds the last record."""

    def __init__(self, **objects: Any) -> None:
        self.objects = {name: obj for name, obj in objects.items() if obj is not None}
        self.states: dict[str, Any] = {}

    def take(self) -> None:
        self.states = {name: state_of(obj) for name, obj in self.objects.items()}


def restore(obj: Any, state: Any) -> None:
    """Put ``state`` (from :func:`state_of`) back into ``obj``, in place: whoever holds ``obj``
    sees the restored state."""
    if isinstance(obj, torch.Generator):
        obj.set_state(state)
    elif isinstance(obj, torch.Tensor):
        with torch.no_grad():
            obj.copy_(state)
    elif hasattr(obj, "load_state_dict"):
        obj.load_state_dict(state)
    elif isinstance(obj, list):
        obj[:] = state
    elif isinstance(obj, dict):
        obj.clear()
        obj.update(state)
    else:
        raise TypeError(f"cannot restore a {type(obj).__name__}")


class Checkpoint:
    """The checkpoint of one seed (module doc). ``path=None``: no file, every epoch runs.

    ``meta`` (experiment, config, seed, version) is stored in the file and must match on resume;
    ``saved`` is the state read from an earlier file (:func:`load`); ``records`` (the seed's epoch
    records, as the runner writes them to ``metrics.jsonl``) are saved with every snapshot and
    restored on resume. ``common`` objects (the run's generators) belong to every stage.
    """

    def __init__(
        self,
        path: Path | None = None,
        meta: dict[str, Any] | None = None,
        saved: dict[str, Any] | None = None,
        records: list[dict] | None = None,
        common: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.meta = meta or {}
        self.records = records if records is not None else []
        self.common = common or {}
        saved = saved or {}
        self._stages: dict[str, dict[str, Any]] = saved.get("stages", {})
        self.resumed_epochs = sum(s["epoch"] for s in self._stages.values())
        if "records" in saved:
            self.records[:] = saved["records"]

    def epochs(self, stage: str, total: int, objects: dict[str, Any]) -> Iterator[int]:
        """The 0-based epochs of ``stage`` still to train, out of ``total``; a snapshot of
        ``objects`` (and the common ones) is saved after each. On resume the objects are first
        restored from the checkpoint."""
        clash = set(self.common) & set(objects)
        if clash:
            raise ValueError(f"stage {stage!r}: {sorted(clash)} would hide the run's own objects")
        objects = {**self.common, **objects}
        start = 0
        saved = self._stages.get(stage)
        if saved is not None:
            missing = set(objects) ^ set(saved["state"])
            if missing or saved["epoch"] > total:
                raise UserInputError(
                    f"checkpoint {self.path} does not fit stage {stage!r} of this run "
                    f"(objects {sorted(missing)}, epoch {saved['epoch']} of {total})"
                )
            for name, obj in objects.items():
                restore(obj, saved["state"][name])
            start = saved["epoch"]
        for epoch in range(start, total):
            yield epoch
            self._stages[stage] = {"epoch": epoch + 1, "state": {k: state_of(o) for k, o in objects.items()}}
            self.save()

    def save(self, result: dict[str, Any] | None = None) -> None:
        """Write the checkpoint (atomically); with ``result``, the seed's finished result."""
        if self.path is None:
            return
        payload = {**self.meta, "stages": self._stages, "records": list(self.records)}
        if result is not None:
            payload["result"] = result
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        write_bytes_atomic(self.path, buffer.getvalue())


def load(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint at ``path``, refused (one line) when it is truncated, not a checkpoint, or
    from another experiment, config, seed or spinlearn version than ``meta`` says."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle refused by weights_only, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserInputError(f"cannot resume from {path}: not a readable checkpoint ({first})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise UserInputError(f"cannot resume from {path}: not a spinlearn checkpoint of format {FORMAT}")
    for key, expected in meta.items():
        if saved.get(key) != expected:
            what = "the config" if key == "config" else f"{key} {saved.get(key)!r} (this run: {expected!r})"
            raise UserInputError(
                f"cannot resume from {path}: it was written with {what} differing from this run's; "
                "run without --resume to start afresh"
            )
    return saved


# --- a finished seed's result, in containers that load with weights_only ---------------------------


def encode(value: Any) -> Any:
    """``value`` with numpy arrays and tuples tagged, so that it loads with ``weights_only=True``."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return value["__ndarray__"].numpy()
        if set(value) == {"__tuple__"}:
            return tuple(decode(v) for v in value["__tuple__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
