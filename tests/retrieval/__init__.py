"""Tests of ragtune.retrieval."""
