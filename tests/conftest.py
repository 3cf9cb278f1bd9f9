"""Shared pytest configuration: fixture plugins for the real components the tests drive, and
the hypothesis profile (no per-example deadline under CI, where the machine may be loaded:
timing belongs in benchmarks, not in test verdicts)."""

import os

from hypothesis import settings

pytest_plugins = ["fixtures_pcsc", "fixtures_hsm", "fixtures_keys"]

settings.register_profile("ci", deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
