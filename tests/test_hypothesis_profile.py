"""The hypothesis profile is deterministic about time (issue 18): no per-example deadline in
the loaded profile, and a test's own ``@settings(...)`` that names no deadline inherits that,
so a verdict never depends on how loaded the machine (CI or a shared workstation) is."""

from __future__ import annotations

import os

from hypothesis import settings


def test_loaded_profile_has_no_deadline() -> None:
    if os.environ.get("HYPOTHESIS_PROFILE", "cardperso") == "cardperso":
        assert settings.default.deadline is None
    assert settings.get_profile("cardperso").deadline is None
    assert settings.get_profile("ci").deadline is None


def test_own_settings_inherit_no_deadline() -> None:
    # what `@settings(max_examples=...)` builds at import of a test module: the profile that
    # conftest.py loaded is its parent
    if os.environ.get("HYPOTHESIS_PROFILE", "cardperso") == "cardperso":
        assert settings(max_examples=3).deadline is None
