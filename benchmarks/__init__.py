"""Benchmarks: scripts run as `python benchmarks/NAME.py`; tests import a few of their helpers."""
