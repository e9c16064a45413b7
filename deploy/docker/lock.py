"""Write deploy/docker/requirements.lock from a ``pip install --dry-run --report`` JSON report.

Usage (see the header of requirements.lock for the pip command that makes the report):
    python3 deploy/docker/lock.py /tmp/lock/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LOCK = Path(__file__).with_name("requirements.lock")
PROJECT = "auto-invest-oracle"


def main(report_path: str) -> int:
    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    pins = sorted(
        (item["metadata"]["name"], item["metadata"]["version"])
        for item in report["install"]
        if item["metadata"]["name"] != PROJECT
    )
    header = [line for line in LOCK.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    body = [f"{name}=={version}" for name, version in sorted(pins, key=lambda p: p[0].lower())]
    LOCK.write_text("\n".join([*header, *body]) + "\n", encoding="utf-8")
    sys.stdout.write(f"{LOCK}: {len(body)} pins\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
