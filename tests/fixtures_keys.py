"""Fixtures: keys (filled by its owner)."""
