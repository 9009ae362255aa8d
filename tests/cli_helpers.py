"""Running the CLI as a user does: a subprocess of ``python -m spinlearn``."""

import json
import subprocess
import sys


def spinlearn(*args, timeout=600):
    """``spinlearn ARGS`` in a subprocess; returns the CompletedProcess (stdout/stderr as text)."""
    return subprocess.run(
        [sys.executable, "-m", "spinlearn", *args], capture_output=True, text=True, timeout=timeout
    )


def run_summary(out_dir, *args, timeout=600):
    """``spinlearn run ARGS --out OUT_DIR --quiet``, which must succeed; returns its summary.json."""
    done = spinlearn("run", *args, "--out", str(out_dir), "--quiet", timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads((out_dir / "summary.json").read_text())
