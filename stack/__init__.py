"""The local stack supervisor behind ``make run`` (``python -m stack run``).

It runs the whole system on one machine for a demo or development: the embedded PostgreSQL,
the Bitvavo and LLM simulators, and the three services as separate processes, each with only
its own environment; it seeds a demo user through the services' own RPCs and shows every scan
cycle live. Not production code: deploy/ is how the services run for real.
"""
