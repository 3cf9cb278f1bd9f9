"""Shared pytest configuration: fixture plugins for the real components the tests drive."""

pytest_plugins = ["fixtures_pcsc", "fixtures_hsm", "fixtures_keys"]
