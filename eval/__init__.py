"""Evaluation: retrieval (recall@k, MRR, nDCG), answers of the served systems, follow-up
queries, and the benchmark builders. Every evaluation returns its results; the CLI prints them."""
