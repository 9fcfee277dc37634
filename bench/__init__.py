"""Evaluation and benchmarking harness: RD curves, BD-rates, entropy-coder and decoder speed."""
