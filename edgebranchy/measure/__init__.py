"""Measurement: latency statistics, power sources, device profiles, environment facts.

Submodules are imported on demand; nothing here pulls in an optional library.
"""
