"""Benchmarks: each script measures Consentry against a baseline in the same run and ends
with one line of JSON holding its figures."""
