"""``python -m sim.llm [--host H] [--port P] [--api-key K]``: run the LLM simulator.

The first stdout line is its base URL (``http://HOST:PORT/v1``), for scripts and tests that start
it on port 0; it then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from sim.llm.server import LlmSimulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.llm", description="OpenAI-compatible LLM simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help="require this bearer key (default: accept any)")
    args = parser.parse_args(argv)
    simulator = LlmSimulator(args.host, args.port, api_key=args.api_key)
    print(simulator.start(), flush=True)  # noqa: T201 -- the documented first line: the base URL
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
