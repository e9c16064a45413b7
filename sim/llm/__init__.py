"""A local OpenAI-compatible LLM simulator for tests and the demo (not a model, not production code).

``LlmSimulator`` answers chat completions deterministically from the market data in the prompt;
``LlmSimulatorAdmin`` counts what reached it and injects faults. See README.md.
"""

from sim.llm.admin import LlmSimulatorAdmin
from sim.llm.server import MODEL, LlmSimulator

__all__ = ["MODEL", "LlmSimulator", "LlmSimulatorAdmin"]
