"""``python -m benchmarks NAME [--json] [--device cuda] [--out FILE]``, ``python -m benchmarks all``
or ``python -m benchmarks profile [NAME ...]``.

With ``--json`` the last line printed is one JSON object with at least ``ratio``. ``all`` also
writes every result, with the machine it ran on, to ``benchmarks/results.json`` (``--out``: another
file), which the documentation's benchmarks page shows.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

from benchmarks import (
    afd_vs_torch,
    chip_vs_torch,
    danp_vs_bp,
    dw_sgld_vs_sgd,
    hopfield_n1000,
    sweep_vs_serial,
)

BENCHMARKS = {
    "afd_vs_torch": afd_vs_torch.run,
    "chip_vs_torch": chip_vs_torch.run,
    "danp_vs_bp": danp_vs_bp.run,
    "dw_sgld_vs_sgd": dw_sgld_vs_sgd.run,
    "hopfield_n1000": hopfield_n1000.run,
    "sweep_vs_serial": sweep_vs_serial.run,
}
# the ones that time a device rule against its digital step on any torch device (the others
# time the chip's and the sweep's CPU paths)
ON_CUDA = ("afd_vs_torch", "danp_vs_bp", "dw_sgld_vs_sgd", "hopfield_n1000")
RESULTS = Path(__file__).parent / "results.json"


def machine() -> dict:
    """What a timing depends on besides the code: cores, threads, load, the CPU's vector units."""
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "processor": platform.processor() or platform.machine(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


def summary_line(name: str, result: dict) -> str:
    """``NAME: ratio R`` and, where the benchmark reports it, the ratio's spread over its rounds."""
    return f"{name}: ratio {result['ratio']:.3f}{_spread(result)}"


def write_results(results: dict, device: str, out: Path) -> None:
    """``results`` (benchmark -> result), with the machine they ran on, to ``out`` (atomically)."""
    payload = {"device": device, "machine": machine(), "results": results}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(out)


def _spread(result: dict) -> str:
    rounds = result.get("ratio_rounds")
    if not rounds:
        return ""
    return (
        f" (per round: median {rounds['median']:.3f}, quartiles {rounds['q1']:.3f}-{rounds['q3']:.3f},"
        f" range {rounds['min']:.3f}-{rounds['max']:.3f}, {rounds['rounds']} rounds)"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["profile"]:
        from benchmarks import profile

        profile.run(argv[1:] or None)
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("name", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--json", action="store_true", help="end with one JSON line per benchmark")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default cpu)")
    parser.add_argument("--out", type=Path, help=f"write the results here (default for all: {RESULTS.name})")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=list(BENCHMARKS), help="leave these out of all"
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks: --device cuda: no CUDA device here (torch.cuda.is_available() is False); skipped")
        return 0
    names = [name for name in BENCHMARKS if name not in args.skip] if args.name == "all" else [args.name]
    if args.device == "cuda":
        names = [name for name in names if name in ON_CUDA]
    results = {}
    for name in names:
        run = BENCHMARKS[name]
        result = run(device=args.device) if name in ON_CUDA else run()
        results[name] = result
        if args.json:
            print(json.dumps(result))
        else:
            print(summary_line(name, result))
            for key, value in result.items():
                if key not in ("benchmark", "ratio", "ratio_rounds"):
                    print(f"  {key}: {value}")
    out = args.out or (RESULTS if args.name == "all" and args.device == "cpu" else None)
    if out is not None:
        write_results(results, args.device, out)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
