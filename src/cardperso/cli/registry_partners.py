"""``cardperso registry partner …``: the files the centre sends to its partners (comparison
requests, returned-to-unit files, the bank's account-opening data). Formats: docs/registry.md.
"""

from __future__ import annotations

from pathlib import Path

import click

from cardperso.cli.db import DB_OPTION
from cardperso.cli.registry_common import check_output as _check_output
from cardperso.cli.registry_common import open_db as _registry
from cardperso.registry import forms, partners

OUT = click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))


@click.group("partner")
def partner_group() -> None:
    """Files for the bank, the public-security population database and the insured units."""


@partner_group.command("compare-request")
@click.option("--to", "to", required=True, type=click.Choice(["population", "bank"]))
@OUT
@DB_OPTION
def compare_request_cmd(to: str, out: Path, db_url: str) -> None:
    """The audited applications to compare, for the population database or the bank."""
    _check_output("--out", out, db_url)
    with _registry(db_url) as db:
        n = partners.comparison_request(db, to, out)
    click.echo(f"comparison request to the {to}: {n} application(s) → {out} (mode 0600)")


@partner_group.command("returned")
@click.option(
    "--out-dir", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path)
)
@DB_OPTION
def returned_cmd(out_dir: Path, db_url: str) -> None:
    """One returned-UNIT.csv per insured unit: applications returned at comparison, with the
    fields that did not match (never the partner's value)."""
    with _registry(db_url) as db:
        got = partners.returned_files(db, out_dir)
    for unit, n in got.items():
        click.echo(f"  {out_dir / f'returned-{unit}.csv'}: {n} application(s)")
    click.echo(f"{sum(got.values())} returned application(s) in {len(got)} file(s)")


@partner_group.command("account-opening")
@OUT
@click.option("--bank", "bank_code", default=None, help="Only this bank's cards.")
@DB_OPTION
def account_opening_cmd(out: Path, bank_code: str | None, db_url: str) -> None:
    """The personalized cards waiting for their bank account, as the bank stage's input."""
    _check_output("--out", out, db_url)
    with _registry(db_url) as db:
        n = partners.account_opening(db, out, bank_code=bank_code)
    click.echo(f"account-opening data: {n} card(s) → {out} (mode 0600)")


COMMANDS = [partner_group]


@click.group("form")
def form_group() -> None:
    """The acceptance forms as PDF (personal data: mode 0600)."""


@form_group.command("application")
@click.argument("card_or_id")
@OUT
@DB_OPTION
def application_form_cmd(card_or_id: str, out: Path, db_url: str) -> None:
    """社会保障卡申领登记表: the application registration form with the applicant's photo."""
    _check_output("--out", out, db_url)
    with _registry(db_url) as db:
        got = forms.application_form(db, card_or_id, out)
    click.echo(f"application {got.app_id}: registration form → {out} (personal data, mode 0600)")


@form_group.command("issuing")
@click.argument("card_or_id")
@OUT
@DB_OPTION
def issuing_form_cmd(card_or_id: str, out: Path, db_url: str) -> None:
    """社会保障卡发卡服务确认单: the card-issuing service confirmation form (issuing bank)."""
    _check_output("--out", out, db_url)
    with _registry(db_url) as db:
        got = forms.issuing_form(db, card_or_id, out)
    click.echo(f"application {got.app_id}: issuing confirmation form → {out} (mode 0600)")


COMMANDS.append(form_group)
