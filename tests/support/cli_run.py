"""`dawnchorus` as a user runs it: a subprocess with no Prefect server and no Ray cluster of the
test session's (a plain run starts its own local Ray), its Prefect home in a folder of the test's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def dawnchorus(*args: str, home: Path, timeout_s: float = 900) -> subprocess.CompletedProcess:
    """Run `python -m flows.cli ARGS`; stdout and stderr captured as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(Path(home) / "prefect-home"))
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout_s)
