"""prep."""
