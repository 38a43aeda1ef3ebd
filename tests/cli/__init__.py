"""Tests of ragtune.cli."""
