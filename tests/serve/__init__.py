"""Tests of ragtune.serve."""
