"""Shared pytest configuration: fixture plugins for the real components the tests drive, and
the hypothesis profile: no per-example deadline, the same in CI and locally, so a verdict never
depends on how loaded the machine is (timing belongs in benchmarks, not in test verdicts).
HYPOTHESIS_PROFILE=NAME picks another registered profile (e.g. `dev` for hypothesis' default
200 ms deadline while profiling a strategy)."""

import os

from hypothesis import settings

pytest_plugins = ["fixtures_pcsc", "fixtures_hsm", "fixtures_keys"]

settings.register_profile("cardperso", deadline=None, print_blob=True)
settings.register_profile("ci", settings.get_profile("cardperso"))  # the name CI used before
settings.register_profile("dev", settings.get_profile("cardperso"), deadline=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "cardperso"))
