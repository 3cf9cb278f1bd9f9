"""Fixtures: hsm (filled by its owner)."""
