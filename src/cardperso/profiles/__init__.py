"""Card products: ``profiles/*.yaml`` loaded, checked against a schema (errors name the file,
the line and the field) and turned into typed :class:`~cardperso.profiles.model.Profile`
objects. See ``docs/prep.md`` for every key."""

from cardperso.profiles.loader import list_profiles, load_profile, parse_profile
from cardperso.profiles.model import Profile

__all__ = ["Profile", "list_profiles", "load_profile", "parse_profile"]
