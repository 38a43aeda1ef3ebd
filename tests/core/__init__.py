"""Tests of ragtune.core."""
