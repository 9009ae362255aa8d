"""The command line's parts that are not commands: help formatting (defaults, the experiments'
names without importing torch), ``-v`` logging, and the settings of ``run`` (``--from``)."""

from __future__ import annotations

import argparse
import sys

from spinlearn.errors import UserInputError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, except where there is none to show (None, off, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def experiment_names() -> str:
    from spinlearn._experiment_names import builtin_names

    return "an experiment: " + ", ".join(builtin_names()) + " (`spinlearn list` says what each does)"


DEVICE_HELP = "auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N"


def version() -> str:
    from spinlearn import __version__

    return f"spinlearn {__version__}"


def run_settings(args) -> tuple[str, dict, dict]:
    """The experiment's name, the config tree under the user's, and run settings: from the
    arguments, or from ``--from RUN_DIR``'s record with the arguments given on top."""
    given = {
        "seed": args.seed,
        "seeds": args.seeds,
        "device": args.device,
        "backend": args.backend,
        "resource": args.resource,
    }
    if args.from_dir is None:
        if args.name is None:
            raise UserInputError("run needs an experiment NAME or --from RUN_DIR")
        defaults = {"seed": 0, "seeds": 1, "device": "auto", "backend": "simulated", "resource": None}
        return args.name, {}, {k: defaults[k] if v is None else v for k, v in given.items()}
    from spinlearn.provenance import read

    record = read(args.from_dir)
    if args.name is not None and args.name != record["experiment"]:
        raise UserInputError(f"--from {args.from_dir} is a run of {record['experiment']}, not {args.name}")
    recorded = {k: record.get(k) for k in given}
    return (
        record["experiment"],
        record["config"],
        {k: recorded[k] if v is None else v for k, v in given.items()},
    )


def configure_logging(verbosity: int) -> None:
    """``-v``: spinlearn's INFO messages; ``-vv``: DEBUG from every library, the instrument stack's
    (pyvisa, pymeasure: each command and reply) included."""
    if not verbosity:
        return
    import logging  # only here: the CLI starts faster without it

    level = logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=logging.WARNING if verbosity == 1 else logging.DEBUG,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    for name in ("spinlearn", "pyvisa", "pymeasure"):
        logging.getLogger(name).setLevel(level)
