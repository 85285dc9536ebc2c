"""Benchmarks that print ratios (not tests): `python -m bench heatmap|graph`."""
