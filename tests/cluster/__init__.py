"""Tests of ragtune.cluster."""
