"""Tests of ragtune.demo."""
