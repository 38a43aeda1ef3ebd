"""Tests of ragtune.train."""
