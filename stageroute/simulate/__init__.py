"""Simulation: the compiled per-query loop and the full-information replay against the oracle."""
