"""CPU accounting of a process tree (bench/machine.py): a child that exited and was reaped still
counts, as a floor round's PostgreSQL backends do (they live for one round)."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.machine import tree_seconds

_BURN = "import time\nwhile time.process_time() < 0.3:\n    pass\nprint(time.process_time())"


def test_an_exited_child_s_cpu_is_counted() -> None:
    before = tree_seconds(os.getpid())
    done = subprocess.run([sys.executable, "-c", _BURN], capture_output=True, text=True, check=True)
    burned = float(done.stdout)
    after = tree_seconds(os.getpid())
    assert after - before >= burned - 0.05  # the child's CPU (clock ticks are 10 ms)
