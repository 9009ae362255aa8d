r"""Per-node noise streams of stochastic MTJs, for node perturbation: simulated and measured.

Study 4 (Koenders et al., Phys. Rev. Applied 23, 054035 (2025); see the study's page in the docs,
docs/studies/danp.md). The device physics behind the noise is in :mod:`spinlearn.devices.smtj`;
these are the streams a network's nodes read, one sample per node and time step:

* :data:`AUTHORS_NOISE` [C], the authors' simulated sMTJ noise per node and sample:
  :math:`v_t = 0.042092104 + 0.00090841466\,\xi_t + o_t`, :math:`o_t = \pm 0.0059316154` a
  per-node telegraph signal that flips with probability 0.0809 per sample (the flip is drawn before
  the sample is used; the initial sign is random per node). See :func:`authors_noise` and the
  stateful :class:`TelegraphNoise`.
* :class:`TraceNoise`: a measured voltage trace (CSV or parquet column ``V``) streamed as per-node
  noise, each node reading its own offset into the trace (:func:`load_trace` reads it).

Every random draw comes from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spinlearn import _jit
from spinlearn._fields import Validated, param
from spinlearn.errors import DataError

TRACE_SUFFIXES = (".csv", ".txt", ".parquet", ".pqt")


# ---------------------------------------------------------------------------------------------------
# The authors' simulated noise [C]


@dataclass(frozen=True)
class TelegraphNoiseParams(Validated):
    """Per-node noise v_t = mean + std * N(0, 1) + o_t, o_t = +-amplitude flipping with a probability."""

    mean_v: float = param(0.042092104, "mean of the noise (V)", ge=-1e3, le=1e3)
    gaussian_std_v: float = param(0.00090841466, "std of the white Gaussian part (V)", ge=0, le=1e3)
    telegraph_amplitude_v: float = param(
        0.0059316154, "amplitude of the telegraph part o_t = +-A (V)", ge=0, le=1e3
    )
    flip_probability: float = param(0.0809, "probability that o_t changes sign before a sample", ge=0, le=1)


#: The authors' simulated sMTJ noise statistics ([C]: Koenders et al. 2025, their ``simulatedMTJNoise``).
AUTHORS_NOISE = TelegraphNoiseParams(
    mean_v=0.042092104,
    gaussian_std_v=0.00090841466,
    telegraph_amplitude_v=0.0059316154,
    flip_probability=0.0809,
)


def initial_telegraph_sign(
    n_nodes: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Random +-1 per node, equally likely (the authors' ``sign(randn)``)."""
    if n_nodes < 1:
        raise ValueError(f"n_nodes must be >= 1, got {n_nodes}")
    u = torch.rand(n_nodes, generator=generator, device=generator.device, dtype=dtype)
    return torch.where(u < 0.5, 1.0, -1.0).to(dtype)


def authors_noise(
    sign: torch.Tensor,
    n_samples: int,
    generator: torch.Generator,
    params: TelegraphNoiseParams = AUTHORS_NOISE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_samples`` successive noise samples per node, shape ``(n_samples, n_nodes)``, and the new sign.

    ``sign`` ``(n_nodes,)`` is the telegraph state (+-1) left by the previous call; pass the returned
    one to the next call so the telegraph signal persists. Per sample, each node's sign first flips
    with probability ``flip_probability``, then v = mean + std N(0, 1) + amplitude * sign.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    shape = (n_samples, *sign.shape)
    gauss = torch.randn(shape, generator=generator, device=sign.device, dtype=sign.dtype)
    uniform = torch.rand(shape, generator=generator, device=sign.device, dtype=sign.dtype)
    if (
        sign.device.type == "cpu"
        and sign.dim() == 1
        and sign.dtype in (torch.float32, torch.float64)
        and not sign.requires_grad
        and _jit.available()
    ):
        return _telegraph_fused(sign, gauss, uniform, params)
    flips = uniform < params.flip_probability
    signs = sign * torch.where(flips, -1.0, 1.0).to(sign.dtype).cumprod(dim=0)
    noise = params.mean_v + params.gaussian_std_v * gauss + params.telegraph_amplitude_v * signs
    return noise, signs[-1].clone()


_telegraph_kernel = None  # compiled on first use


def _compile_telegraph(cache: bool = True):
    from numba import njit

    # no fast-math: each product and sum rounds as the eager passes' do, in their order
    @njit(error_model="numpy", boundscheck=False, cache=cache)
    def telegraph(sign, gauss, uniform, flip, mean, std, amplitude, out):
        for t in range(gauss.shape[0]):
            for j in range(gauss.shape[1]):
                sign[j] = -sign[j] if uniform[t, j] < flip else sign[j]
                out[t, j] = (mean + std * gauss[t, j]) + amplitude * sign[j]

    return telegraph


def _telegraph_fused(
    sign: torch.Tensor, gauss: torch.Tensor, uniform: torch.Tensor, params: TelegraphNoiseParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`authors_noise` from its draws in one numba pass (CPU): the eager flips, cumulative
    product and three arithmetic passes are some ten passes over the samples, this reads each draw
    once. Bitwise the eager result (the signs are exact, the rest is the same float arithmetic)."""
    global _telegraph_kernel
    if _telegraph_kernel is None:
        _telegraph_kernel = _jit.compile_cached(_compile_telegraph)
    kind = gauss.numpy().dtype.type  # the eager passes use the scalars in the tensors' dtype
    new_sign, noise = sign.clone(), torch.empty_like(gauss)
    scalars = (params.flip_probability, params.mean_v, params.gaussian_std_v, params.telegraph_amplitude_v)
    _telegraph_kernel(new_sign.numpy(), gauss.numpy(), uniform.numpy(), *map(kind, scalars), noise.numpy())
    return noise, new_sign


class TelegraphNoise:
    """Stateful per-node telegraph noise (default :data:`AUTHORS_NOISE`): ``sample(k)`` -> ``(k, nodes)``."""

    def __init__(
        self,
        n_nodes: int,
        generator: torch.Generator,
        params: TelegraphNoiseParams = AUTHORS_NOISE,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.n_nodes = n_nodes
        self.generator = generator
        self.params = params
        self.sign = initial_telegraph_sign(n_nodes, generator, dtype)

    def sample(self, n_samples: int = 1) -> torch.Tensor:
        noise, self.sign = authors_noise(self.sign, n_samples, self.generator, self.params)
        return noise

    __call__ = sample

    def state_dict(self) -> dict:
        return {"sign": self.sign}  # each node's telegraph state

    def load_state_dict(self, state: dict) -> None:
        self.sign = state["sign"].to(self.sign.device, self.sign.dtype)


# ---------------------------------------------------------------------------------------------------
# Measured traces


def _trailing_number(path: Path) -> tuple[int, str]:
    match = re.search(r"(\d+)$", path.stem)
    return (int(match.group(1)) if match else -1, path.name)


def _read_parquet(path: Path, column: str) -> np.ndarray:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"reading the parquet noise trace {path} needs the [parquet] extra: "
            "pip install 'spinlearn[parquet]'"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own exception types for corrupt files
        raise DataError(f"cannot read parquet noise trace {path}: {str(exc).splitlines()[0]}") from None
    if column not in table.column_names:
        raise DataError(
            f"noise trace {path} has no column {column!r} (columns: {', '.join(table.column_names)})"
        )
    try:
        return np.asarray(table.column(column).to_numpy(), dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"noise trace {path}: column {column!r} is not numeric") from None


def _read_csv(path: Path, column: str) -> np.ndarray:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read noise trace {path}: {exc}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"noise trace {path} is empty")
    first = [cell.strip().strip('"').strip("'") for cell in lines[0].split(",")]
    try:
        [float(cell) for cell in first]
        header = None
    except ValueError:
        header = first
    if header is None:
        if len(first) != 1:
            raise DataError(
                f"noise trace {path} has {len(first)} columns and no header: give one column or one named V"
            )
        use = 0
    elif len(header) == 1:
        use = 0
    elif column in header:
        use = header.index(column)
    else:
        raise DataError(f"noise trace {path} has no column {column!r} (header: {', '.join(header)})")
    body = lines if header is None else lines[1:]
    if not body:
        raise DataError(f"noise trace {path} holds a header but no samples")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = np.loadtxt(body, delimiter=",", usecols=use, ndmin=1, dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise DataError(f"noise trace {path} is not numeric: {str(exc).splitlines()[0]}") from None
    return values


def load_trace(path: str | Path, column: str = "V") -> np.ndarray:
    """A measured voltage trace as a float64 array.

    ``path``: a CSV file (one column, with or without a header, or a header naming ``column``), a
    parquet file (``.parquet``/``.pqt``, column ``column``; needs pyarrow), or a directory of such
    files concatenated in the order of the number ending their names (the authors' chunked traces,
    ``trace0.pqt``, ``trace1.pqt``, ...). Raises :class:`DataError` naming the file when it is
    missing, empty, non-numeric or holds NaN/Inf.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in TRACE_SUFFIXES), key=_trailing_number
        )
        if not files:
            raise DataError(f"noise trace directory {path} holds no {'/'.join(TRACE_SUFFIXES)} files")
        return np.concatenate([load_trace(f, column) for f in files])
    if not path.is_file():
        raise DataError(f"noise trace {path} not found")
    reader = _read_parquet if path.suffix.lower() in (".parquet", ".pqt") else _read_csv
    values = reader(path, column)
    if values.size == 0:
        raise DataError(f"noise trace {path} holds no samples")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"noise trace {path} holds {bad.size} NaN/Inf value(s), the first at sample {bad[0]}")
    return values


class TraceNoise:
    """A measured voltage trace streamed as per-node noise: ``sample(k)`` -> ``(k, n_nodes)``.

    Node ``j`` reads the trace from its own offset (evenly spread over the trace, or uniform random
    from ``generator``), wrapping around at the end; rows of one call are successive samples and
    successive calls continue in time. Values are multiplied by ``scale``.
    """

    def __init__(
        self,
        path: str | Path,
        n_nodes: int,
        *,
        column: str = "V",
        scale: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if n_nodes < 1:
            raise ValueError(f"n_nodes must be >= 1, got {n_nodes}")
        self.path = Path(path)
        self.n_nodes = n_nodes
        self.trace = torch.as_tensor(load_trace(path, column) * scale, dtype=dtype, device=device)
        length = self.trace.shape[0]
        if generator is None:
            self.offsets = torch.arange(n_nodes, device=device) * length // n_nodes
        else:
            self.offsets = torch.randint(length, (n_nodes,), generator=generator, device=generator.device).to(
                device
            )
        self.position = 0

    def __len__(self) -> int:
        return int(self.trace.shape[0])

    def sample(self, n_samples: int = 1) -> torch.Tensor:
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        times = self.position + torch.arange(n_samples, device=self.offsets.device)
        index = (times[:, None] + self.offsets[None, :]) % len(self)
        self.position = (self.position + n_samples) % len(self)
        return self.trace[index]

    __call__ = sample

    def state_dict(self) -> dict:
        return {"position": self.position}  # where in the trace the next sample starts

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])
