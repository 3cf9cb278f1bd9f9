"""Fixtures: pcsc (filled by its owner)."""
