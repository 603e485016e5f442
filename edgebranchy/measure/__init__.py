"""The measuring instruments: latency statistics, power sources (power/), run conditions and throttling,
warm-up, external meters, energy per exit, environment facts, clock locking.

Submodules are imported on demand; nothing here pulls in an optional library.
"""
