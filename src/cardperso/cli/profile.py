"""``cardperso profile list|show|check``: card products described in ``profiles/*.yaml``."""

from __future__ import annotations

import dataclasses
from typing import Any

import click
import yaml

from cardperso.profiles.loader import list_profiles, load_profile
from cardperso.profiles.model import Profile

__all__ = ["COMMANDS"]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def resolved(profile: Profile) -> dict[str, Any]:
    """The profile as plain data (hex for bytes), as ``profile show`` prints it."""
    data: dict[str, Any] = _plain(profile)
    data["digest"] = profile.digest.hex()
    return data


@click.group("profile")
def profile_group() -> None:
    """Card products (profiles/*.yaml)."""


@profile_group.command("list")
def list_cmd() -> None:
    """List the profiles found by name."""
    for name in list_profiles():
        p = load_profile(name)
        click.echo(f"{name:<16} {p.title}")


@profile_group.command("show")
@click.argument("name")
def show_cmd(name: str) -> None:
    """Print the resolved profile NAME (defaults filled in, digest shown)."""
    p = load_profile(name)
    click.echo(yaml.safe_dump(resolved(p), sort_keys=False, allow_unicode=True, width=100))


@profile_group.command("check")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
def check_cmd(path: str) -> None:
    """Validate one profile file; errors name the file, the line and the field."""
    from cardperso.prep.oda_run import check_aip

    p = load_profile(path)
    check_aip(p)  # the AIP claims no SDA, DDA or CDA without the pboc.oda data
    click.echo(f"{path}: OK - profile {p.name} (digest {p.digest.hex()[:16]}…)")


COMMANDS = [profile_group]
