"""``python -m benchmarks NAME [--json]`` or ``python -m benchmarks all``.

With ``--json`` the last line printed is one JSON object with at least ``ratio``.
"""

from __future__ import annotations

import argparse
import json
import sys

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("name", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--json", action="store_true", help="end with one JSON line per benchmark")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        result = BENCHMARKS[name]()
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{name}: ratio {result['ratio']:.3f}")
            for key, value in result.items():
                if key not in ("benchmark", "ratio"):
                    print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
