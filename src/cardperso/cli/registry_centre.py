"""``cardperso registry …`` for the centre's counter: finding applications and cards
(``show``, ``list``), lost cards (``suspend``, ``restore``, ``reissue``) and the requests to the
bank (``report bank-requests``). Attached to the ``registry`` group by
:mod:`cardperso.cli.registry`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cardperso.cli.db import DB_OPTION
from cardperso.cli.registry_common import BY_OPTION
from cardperso.cli.registry_common import actor_of as _actor
from cardperso.cli.registry_common import check_output as _check_output
from cardperso.cli.registry_common import day_of as _day
from cardperso.cli.registry_common import open_db as _registry
from cardperso.registry import applications, breakdown, centre, collection, find, lost
from cardperso.registry.calendar import load_calendar


@click.command("suspend")
@click.argument("card_no")
@click.option("--reason", default="reported lost", show_default=True)
@DB_OPTION
@BY_OPTION
def suspend_cmd(card_no: str, reason: str, db_url: str, actor: str | None) -> None:
    """挂失: suspend an issued CARD_NO reported lost (its account is blocked at the bank)."""
    with _registry(db_url) as db:
        queued = lost.suspend(db, card_no, reason=reason, actor=_actor(actor))
    tail = "; bank block request queued (report bank-requests)" if queued else ""
    click.echo(f"card {card_no}: suspended{tail}")


@click.command("restore")
@click.argument("card_no")
@click.option("--reason", default="found by the cardholder", show_default=True)
@DB_OPTION
@BY_OPTION
def restore_cmd(card_no: str, reason: str, db_url: str, actor: str | None) -> None:
    """解挂: a suspended CARD_NO was found: issued again (the bank unblocks its account)."""
    with _registry(db_url) as db:
        queued = lost.restore(db, card_no, reason=reason, actor=_actor(actor))
    tail = "; bank unblock request queued (report bank-requests)" if queued else ""
    click.echo(f"card {card_no}: issued again{tail}")


@click.command("reissue")
@click.argument("card_no")
@click.option(
    "--date", "date", default=None, help="Date the re-issue was accepted (default today)."
)
@click.option(
    "--type", "application_type", default="sporadic", show_default=True,
    type=click.Choice(["sporadic", "batch"]),
)  # fmt: skip
@click.option(
    "--service-point",
    "service_point",
    default="",
    help="Where it was asked for (default: as before).",
)
@DB_OPTION
@BY_OPTION
def reissue_cmd(
    card_no: str,
    date: str | None,
    application_type: str,
    service_point: str,
    db_url: str,
    actor: str | None,
) -> None:
    """补卡: cancel a suspended CARD_NO and accept a new application that replaces it."""
    day = _day(date, "date")
    with _registry(db_url) as db:
        got = lost.reissue(
            db,
            card_no,
            accepted_date=f"{day:%Y%m%d}",
            application_type=application_type,
            actor=_actor(actor),
            service_point=service_point,
        )
    nxt = f"registry confirm {got.app_id}, then audit" if got.service_point else "registry audit"
    click.echo(
        f"card {card_no}: cancelled (lost: re-issued); application {got.app_id} "
        f"{got.ssn_masked} accepted to replace it (next: {nxt})"
    )


@click.command("bank-requests")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bank", "bank_code", default=None, help="Only this bank's requests.")
@DB_OPTION
def bank_requests_cmd(out: Path, bank_code: str | None, db_url: str) -> None:
    """Block / unblock requests for the bank not yet sent (CSV with PANs: mode 0600); they are
    marked sent with this file."""
    _check_output("--out", out, db_url)
    with _registry(db_url) as db:
        n = lost.write_requests(db, out, bank_code=bank_code)
    if n:
        click.echo(f"{n} bank request(s) → {out} (personal data, mode 0600)")
    else:
        click.echo("no bank request waiting (no file written)")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, sort_keys=True))


@click.command("show")
@click.argument("card_or_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@DB_OPTION
def show_cmd(card_or_id: str, as_json: bool, db_url: str) -> None:
    """An application (by id) or a card (by number): its data (masked), card, the person's
    cards, bank requests, photo path and whole history."""
    with _registry(db_url) as db:
        got = find.show(db, card_or_id)
    if as_json:
        _echo_json(got)
        return
    card = got.pop("card")
    hist = got.pop("history")
    people = got.pop("cards_of_person")
    for key, value in got.items():
        if value != "":
            click.echo(f"{key + ':':<18} {value}")
    if card:
        click.echo("card:")
        for key, value in card.items():
            if value in ("", [], {}):
                continue
            if isinstance(value, list) and value and isinstance(value[0], dict):
                click.echo(f"  {key}:")
                for item in value:
                    click.echo("    " + "  ".join(f"{k} {v}" for k, v in item.items() if v != ""))
            elif isinstance(value, dict):
                click.echo(f"  {key + ':':<16} " + "  ".join(f"{k} {v}" for k, v in value.items()))
            else:
                shown = ", ".join(map(str, value)) if isinstance(value, list) else value
                click.echo(f"  {key + ':':<16} {shown}")
    if len(people) > 1:
        click.echo("cards of this person:")
        for c in people:
            click.echo(
                f"  {c['card_no']}  {c['state']:<20} {'active' if c['active'] else 'inactive'}"
                f"  application {c['application_id']}"
            )
    click.echo("history:")
    for t in hist:
        click.echo(
            f"  {t['at']}  {t['event']:<17} {t['from'] or '-':>20} → {t['to']:<20} "
            f"by {t['by']}{'  ' + t['detail'] if t['detail'] else ''}"
        )


@click.command("list")
@click.option("--state", "states", multiple=True, help="Only this state (repeatable).")
@click.option("--batch", default="", help="Only cards of this batch.")
@click.option("--bank", default="", help="Only this bank code.")
@click.option("--region", default="", help="Only this region code.")
@click.option("--ssn", default="", help="Only this person (identity number; shown masked).")
@click.option("--unit", default="", help="Only this insured unit (employer).")
@click.option("--service-point", "service_point", default="", help="Only this service point.")
@click.option(
    "--type", "application_type", default="", type=click.Choice(["", "batch", "sporadic"])
)
@click.option("--from", "date_from", default="", help="Accepted on or after (YYYY-MM-DD).")
@click.option("--to", "date_to", default="", help="Accepted on or before (YYYY-MM-DD).")
@click.option("--limit", type=click.IntRange(min=1), default=None)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one object per application.")
@DB_OPTION
def list_cmd(
    states: tuple[str, ...],
    batch: str,
    bank: str,
    region: str,
    ssn: str,
    unit: str,
    service_point: str,
    application_type: str,
    date_from: str,
    date_to: str,
    limit: int | None,
    as_json: bool,
    db_url: str,
) -> None:
    """Applications and their cards, oldest first, with filters (all must hold)."""
    f = find.filters(
        states=states,
        batch=batch,
        bank=bank,
        region=region,
        ssn=ssn,
        unit=unit,
        service_point=service_point,
        application_type=application_type,
        date_from=date_from,
        date_to=date_to,
        limit=limit,
    )
    with _registry(db_url) as db:
        rows = find.list_apps(db, f)
    if as_json:
        for row in rows:
            _echo_json(row)
        return
    click.echo(
        f"{'id':>6}  {'card':9}  {'state':<20} {'type':<8} {'accepted':8}  {'region':6}  "
        f"{'bank':5} {'batch':<14} identity"
    )
    for r in rows:
        click.echo(
            f"{r['application_id']:>6}  {r['card_no'] or '-':9}  {r['state']:<20} "
            f"{r['application_type']:<8} {r['accepted_date']:8}  {r['region']:6}  "
            f"{r['bank_code'] or '-':5} {r['batch_no'] or '-':<14} {r['ssn_masked']}"
        )
    click.echo(f"{len(rows)} application(s)")


@click.command("confirm")
@click.argument("app_id", type=int)
@click.option("--staff", default="", help="The staff member who checked and signed the form.")
@click.option("--applicant", is_flag=True, help="The applicant signed the form.")
@DB_OPTION
@BY_OPTION
def confirm_cmd(app_id: int, staff: str, applicant: bool, db_url: str, actor: str | None) -> None:
    """Record the signatures on the registration form of accepted application APP_ID."""
    with _registry(db_url) as db:
        missing = applications.confirm(
            db, app_id, staff=staff, applicant=applicant, actor=_actor(actor)
        )
    tail = f"still waiting for: {', '.join(missing)}" if missing else "confirmed by both"
    click.echo(f"application {app_id}: {tail}")


def _party_group(kind: str, label: str) -> click.Group:
    group = click.Group(kind.replace("_", "-"), help=f"The centre's list of {label}s.")

    @group.command("add")
    @click.argument("code")
    @click.argument("name")
    @click.option("--region", default="", help="Region code (GB/T 2260).")
    @DB_OPTION
    def add(code: str, name: str, region: str, db_url: str) -> None:
        """Add CODE with its NAME."""
        with _registry(db_url) as db:
            centre.add_party(db, kind, code, name, region)
        click.echo(f"{label} {code}: {name}")

    @group.command("list")
    @click.option("--json", "as_json", is_flag=True, help="JSON Lines.")
    @DB_OPTION
    def list_(as_json: bool, db_url: str) -> None:
        """The list, by code."""
        with _registry(db_url) as db:
            got = centre.parties(db, kind)
        for p in got.values():
            if as_json:
                _echo_json({"code": p.code, "name": p.name, "region": p.region})
            else:
                click.echo(f"{p.code:<12} {p.name}{'  region ' + p.region if p.region else ''}")
        if not as_json:
            click.echo(f"{len(got)} {label}(s)")

    return group


@click.group("box")
def box_group() -> None:
    """Boxes of cards sent to the service points, and their receipt."""


@box_group.command("pack")
@click.option("--service-point", "service_point", required=True)
@click.option("--manifest", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--box", "box_no", default=None, help="Box number (default XSP-YYYYMMDD-NNN).")
@DB_OPTION
def box_pack_cmd(service_point: str, manifest: Path, box_no: str | None, db_url: str) -> None:
    """Put the made cards of a service point that are in no box yet into a new box."""
    _check_output("--manifest", manifest, db_url)
    with _registry(db_url) as db:
        box = collection.pack(db, service_point, manifest, box_no=box_no)
    click.echo(f"box {box.box_no}: {box.cards} card(s) for {service_point} → {manifest}")


@box_group.command("receive")
@click.argument("box_no")
@click.option("--by", "by", required=True, help="Who received it at the service point.")
@click.option("--date", "date", default=None, help="Date received (default today).")
@DB_OPTION
def box_receive_cmd(box_no: str, by: str, date: str | None, db_url: str) -> None:
    """The service point confirms it received BOX_NO: its cards can be collected there."""
    day = _day(date, "date")
    with _registry(db_url) as db:
        box = collection.receive(db, box_no, by=by, date=f"{day:%Y%m%d}")
    click.echo(f"box {box_no}: {box.cards} card(s) received at {box.service_point} by {by}")


@box_group.command("list")
@click.option("--service-point", "service_point", default="")
@DB_OPTION
def box_list_cmd(service_point: str, db_url: str) -> None:
    """Boxes, and whether their service point received them."""
    with _registry(db_url) as db:
        got = collection.boxes(db, service_point)
    for b in got:
        where = f"received {b.received_date} by {b.received_by}" if b.received_date else "sent"
        click.echo(f"{b.box_no:<24} {b.service_point:<10} {b.cards:>4} card(s)  {where}")
    click.echo(f"{len(got)} box(es)")


COMMANDS = [
    box_group,
    show_cmd,
    list_cmd,
    suspend_cmd,
    restore_cmd,
    reissue_cmd,
    confirm_cmd,
    _party_group("service_point", "service point"),
    _party_group("unit", "insured unit"),
    _party_group("bank", "cooperative bank"),
]
REPORTS = [bank_requests_cmd]


def _filters_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--from", "date_from", default="", help="Accepted on or after."),
            click.option("--to", "date_to", default="", help="Accepted on or before."),
            click.option("--unit", default="", help="Only this insured unit."),
            click.option("--service-point", "service_point", default="", help="Only this point."),
            click.option("--bank", default="", help="Only this bank code."),
            click.option("--calendar", "calendar_file", default=None, envvar="CARDPERSO_CALENDAR",
                         type=click.Path(exists=True, dir_okay=False),
                         help="Holiday file (env CARDPERSO_CALENDAR)."),
            click.option("--as-of", "as_of", default=None, help="Judge on (default today)."),
            click.option("--out", "out_csv", type=click.Path(dir_okay=False, path_type=Path),
                         default=None, help="Write CSV here instead of text."),
            DB_OPTION,
        ]
    ):  # fmt: skip
        fn = option(fn)
    return fn


@click.command("breakdown")
@click.option("--by", "by", required=True, type=click.Choice(list(breakdown.GROUPS)))
@_filters_options
def breakdown_cmd(
    by: str,
    date_from: str,
    date_to: str,
    unit: str,
    service_point: str,
    bank: str,
    calendar_file: str | None,
    as_of: str | None,
    out_csv: Path | None,
    db_url: str,
) -> None:
    """Applications per batch, region, bank, unit or service point: on the way, ready, issued,
    stopped, late and at risk, lead times (text, or CSV with --out)."""
    f = find.filters(
        date_from=date_from, date_to=date_to, unit=unit, service_point=service_point, bank=bank
    )
    day = _day(as_of, "as_of")
    if out_csv:
        _check_output("--out", out_csv, db_url)
    with _registry(db_url) as db:
        groups = breakdown.breakdown(db, load_calendar(calendar_file), by, f, day)
    if out_csv:
        breakdown.write_csv(out_csv, breakdown.COLUMNS, [g.row() for g in groups])
        click.echo(f"{len(groups)} {by} group(s) → {out_csv}")
        return
    click.echo(
        f"{by:<14} {'apps':>5} {'on way':>6} {'ready':>5} {'issued':>6} {'stopped':>7} "
        f"{'late':>4} {'risk':>4} {'notified':>8} {'median':>6} {'in target':>9}"
    )
    for g in groups:
        r = g.row()
        click.echo(
            f"{r[0]:<14} {r[1]:>5} {r[2]:>6} {r[3]:>5} {r[4]:>6} {r[5]:>7} {r[6]:>4} {r[7]:>4} "
            f"{r[8]:>8} {r[9]!s:>6} {r[10]:>9}"
        )
    click.echo(f"as of {day.isoformat()}: {len(groups)} group(s)")


@click.command("waiting")
@_filters_options
def waiting_cmd(
    date_from: str,
    date_to: str,
    unit: str,
    service_point: str,
    bank: str,
    calendar_file: str | None,
    as_of: str | None,
    out_csv: Path | None,
    db_url: str,
) -> None:
    """Cards waiting to be collected, per service point, longest first."""
    f = find.filters(
        date_from=date_from, date_to=date_to, unit=unit, service_point=service_point, bank=bank
    )
    day = _day(as_of, "as_of")
    if out_csv:
        _check_output("--out", out_csv, db_url)
    with _registry(db_url) as db:
        got = breakdown.waiting(db, load_calendar(calendar_file), day, f)
    rows = breakdown.waiting_rows(got)
    if out_csv:
        breakdown.write_csv(out_csv, breakdown.WAITING_COLUMNS, rows)
        click.echo(f"{len(rows)} card(s) waiting → {out_csv}")
        return
    per_point: dict[str, int] = {}
    for w in got:
        per_point[w.service_point] = per_point.get(w.service_point, 0) + 1
    for point, card, ssn, notified, days, kind in rows:
        tag = " (temporary card)" if kind == "temporary" else ""
        click.echo(f"  {point:<10} {card}  {ssn}  notified {notified}  {days} working days{tag}")
    for point, n in per_point.items():
        click.echo(f"{point}: {n} card(s) waiting")
    click.echo(f"as of {day.isoformat()}: {len(rows)} card(s) waiting to be collected")


REPORTS.extend([breakdown_cmd, waiting_cmd])
