"""Tests of ragtune.eval."""
