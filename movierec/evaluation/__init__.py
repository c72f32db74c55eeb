"""Offline evaluation: the hold-out protocol, metrics, hyper-parameter tuning, the quality gate."""
