"""Modules the benchmark scripts share (not scripts: every benchmarks/*.py answers --help)."""
