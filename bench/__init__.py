"""Benchmarks of the hot paths on real parts: embedded PostgreSQL, services as processes, the
exchange simulator as a process. ``python -m bench`` (``make bench``); see README.md.

Speed is measured here and only here: no test anywhere is timed.
"""
