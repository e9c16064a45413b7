"""The machine a benchmark ran on, and where its CPU time went during a run (Linux /proc).

On a small machine the load generator, the services, PostgreSQL and the exchange simulator all
share the same cores, so a number means little without knowing whether the machine was busy:
:class:`CpuProbe` reports the whole machine's busy share and the CPU seconds of each process
group (this process, each service, the simulator, PostgreSQL and its backends) over a run.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROJECT_ROOT = Path(__file__).resolve().parents[1]
OTHERS = "everything else on the machine"


def describe() -> dict[str, Any]:
    """Cores, CPU model, memory, Python, load and the git commit: printed and stored with results."""
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 -- fixed git arguments
            ["git", *args],  # noqa: S607 -- git from PATH
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _process_seconds(pid: int, *, reaped: bool = False) -> float:
    """utime + stime of one process, in seconds (0 when it is gone); ``reaped``: plus the CPU of
    its children that have exited and been waited for (cutime + cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    own = int(fields[11]) + int(fields[12])
    return (own + (int(fields[13]) + int(fields[14]) if reaped else 0)) / _TICKS


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


def tree_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its direct children (PostgreSQL: postmaster and its backends),
    the ones running and the ones that exited (the postmaster reaps them: its cutime + cstime), so
    a floor's backends, which live for one round, are counted too."""
    return _process_seconds(pid, reaped=True) + sum(_process_seconds(c) for c in _children(pid))


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


@dataclass
class CpuProbe:
    """CPU seconds per named process group between :meth:`start` and :meth:`stop`.

    ``groups`` maps a name to a function giving its CPU seconds so far (see :func:`tree_seconds`);
    ``client`` is this process (the load generator).
    """

    groups: Mapping[str, Callable[[], float]]

    def start(self) -> None:
        self._wall = time.monotonic()
        self._client = time.process_time()
        self._before = {name: read() for name, read in self.groups.items()}
        self._machine = _machine_jiffies()

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self._wall
        busy0, total0 = self._machine
        busy1, total1 = _machine_jiffies()
        seconds = {name: round(read() - self._before[name], 2) for name, read in self.groups.items()}
        seconds["bench client"] = round(time.process_time() - self._client, 2)
        # Busy time of the whole machine not accounted for above: other users' work on a shared
        # machine, the kernel, short-lived processes. Large values mean the numbers are noisy.
        seconds[OTHERS] = round(max(0.0, (busy1 - busy0) / _TICKS - sum(seconds.values())), 2)
        return {
            "wall_seconds": round(wall, 2),
            "machine_busy_pct": round(100 * (busy1 - busy0) / (total1 - total0), 1) if total1 > total0 else None,
            "cpu_seconds": seconds,
        }


def merge_cpu(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several :meth:`CpuProbe.stop` readings (the rounds of one side of a scenario, measured
    between the other side's rounds) as one: wall and CPU seconds added up, the machine's busy
    share weighted by each reading's wall time."""
    wall = sum(float(p.get("wall_seconds", 0.0)) for p in parts)
    seconds: dict[str, float] = {}
    for p in parts:
        for name, value in p.get("cpu_seconds", {}).items():
            seconds[name] = round(seconds.get(name, 0.0) + value, 2)
    busy = [
        (float(p["wall_seconds"]), float(p["machine_busy_pct"])) for p in parts if p.get("machine_busy_pct") is not None
    ]
    weight = sum(w for w, _ in busy)
    return {
        "wall_seconds": round(wall, 2),
        "machine_busy_pct": round(sum(w * pct for w, pct in busy) / weight, 1) if weight else None,
        "cpu_seconds": seconds,
    }
