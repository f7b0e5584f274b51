"""Rendering and output: Rich reports, plots, JSON documents and atomic file writes."""
