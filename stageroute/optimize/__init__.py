"""Optimisation: solver plumbing, the exact RouteOPT kernel and its Pyomo reference, DeployOPT."""
