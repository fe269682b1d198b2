"""Benchmark scripts; each prints a markdown table (results and commands in docs/benchmarks.md)."""
