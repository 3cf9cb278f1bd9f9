"""``cardperso registry …``: applications and cards from acceptance to issuance (docs/registry.md).

Every command takes ``--db`` (SQLite file or ``postgresql://`` URL, env ``CARDPERSO_DB``) and
``--by`` (who acts, for the transition log; default ``user@host``). Output names cards by
number and people by masked identity number only.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import click

from cardperso.cli import registry_centre, registry_partners
from cardperso.cli.db import DB_OPTION
from cardperso.cli.registry_common import BY_OPTION, CALENDAR_OPTION
from cardperso.cli.registry_common import actor_of as _actor
from cardperso.cli.registry_common import check_output as _check_output
from cardperso.cli.registry_common import day_of as _day
from cardperso.cli.registry_common import open_db as _registry
from cardperso.codec.numbers import mask_id
from cardperso.codec.photo import CARD_PHOTO
from cardperso.errors import DataError
from cardperso.prep.rejects import RejectsWriter
from cardperso.profiles.loader import load_profile
from cardperso.registry import (
    applications,
    breakdown,
    cards,
    lost,
    notices,
    prep_rejects,
    production,
    reports,
    store,
)
from cardperso.registry.calendar import load_calendar, parse_day

PHOTO_OPTION = click.option(
    "--no-photo-spec",
    "no_photo_spec",
    is_flag=True,
    help="Do not check photos against the card photo specification (358x441 JPEG, 9-40 KiB).",
)


@click.group("registry")
def registry_group() -> None:
    """Cardholders' applications and cards: import, audit, compare, register, produce, issue."""


@registry_group.command("import")
@click.argument("applications_file", type=click.Path(exists=True, dir_okay=False))
@DB_OPTION
@BY_OPTION
@click.option("--profile", default="ssc3-pboc", show_default=True, help="Validation profile.")
@click.option("--rejects", type=click.Path(dir_okay=False), default=None, help="Rejects file.")
@PHOTO_OPTION
def import_cmd(
    applications_file: str,
    db_url: str,
    actor: str | None,
    profile: str,
    rejects: str | None,
    no_photo_spec: bool,
) -> None:
    """Accept the applications of APPLICATIONS_FILE (prep input fields + accepted_date,
    application_type; CSV or JSON Lines)."""
    if rejects:  # before anything is accepted: the rejects must have somewhere to go
        _check_output("--rejects", rejects, db_url, APPLICATIONS_FILE=applications_file)
    with _registry(db_url) as db:
        summary = applications.import_applications(
            db,
            applications_file,
            load_profile(profile),
            actor=_actor(actor),
            photo_spec=None if no_photo_spec else CARD_PHOTO,
        )
    if rejects:
        writer = RejectsWriter(rejects)
        for line, field, reason, ssn in summary.rejects:
            writer.add(line, field, reason, ssn)
        writer.close()
    else:
        for line, field, reason, ssn in summary.rejects[:20]:
            click.echo(f"  line {line}: {field}: {reason} {ssn}".rstrip(), err=True)
    click.echo(
        f"read {summary.read}, accepted {summary.accepted}, rejected {summary.rejected}"
        + (f" (application ids {summary.id_ranges()})" if summary.ids else "")
        + (f" (see {rejects})" if rejects and summary.rejected else "")
    )
    if summary.rejected:
        sys.exit(1)


@registry_group.command("audit")
@DB_OPTION
@BY_OPTION
@click.option("--profile", default="ssc3-pboc", show_default=True)
@click.option("--reject", "reject_id", type=int, default=None, help="Reject this application id.")
@click.option("--reason", default="", help="With --reject: why.")
@PHOTO_OPTION
def audit_cmd(
    db_url: str,
    actor: str | None,
    profile: str,
    reject_id: int | None,
    reason: str,
    no_photo_spec: bool,
) -> None:
    """Audit the accepted applications (audited or rejected), or --reject one."""
    with _registry(db_url) as db:
        if reject_id is not None:
            if not reason:
                raise DataError("--reject needs --reason", field="reason")
            applications.reject(db, reject_id, reason, actor=_actor(actor))
            click.echo(f"application {reject_id}: rejected")
            return
        out = applications.audit(
            db,
            load_profile(profile),
            actor=_actor(actor),
            photo_spec=None if no_photo_spec else CARD_PHOTO,
        )
    bad = [o for o in out if o.state == "rejected"]
    waiting = [o for o in out if o.state == "accepted"]
    for o in bad:
        click.echo(f"  application {o.app_id} {o.ssn_masked}: rejected: {o.reason}")
    for o in waiting:
        click.echo(f"  application {o.app_id} {o.ssn_masked}: {o.reason} (registry confirm)")
    click.echo(
        f"audited {len(out) - len(bad) - len(waiting)}, rejected {len(bad)}"
        + (f", waiting for confirmation {len(waiting)}" if waiting else "")
    )


@registry_group.command("compare")
@DB_OPTION
@BY_OPTION
@click.option("--population", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--bank", default=None, type=click.Path(exists=True, dir_okay=False))
def compare_cmd(db_url: str, actor: str | None, population: str, bank: str | None) -> None:
    """Compare audited applications with the population and bank extracts; mismatches are
    returned to the insured unit with their reasons."""
    with _registry(db_url) as db:
        out = applications.compare(db, population, bank, actor=_actor(actor))
    returned = [o for o in out if o.state == "returned"]
    for o in returned:
        click.echo(f"  application {o.app_id} {o.ssn_masked}: returned: {o.reason}")
    click.echo(f"compared {len(out) - len(returned)}, returned {len(returned)}")


@registry_group.command("register")
@DB_OPTION
@BY_OPTION
@click.option("--limit", type=click.IntRange(min=1), default=None)
def register_cmd(db_url: str, actor: str | None, limit: int | None) -> None:
    """Register compared applications: allocate card numbers, cancel active duplicates."""
    with _registry(db_url) as db:
        out = cards.register(db, actor=_actor(actor), limit=limit)
    bad = [r for r in out if r.problem]
    for r in out:
        if r.problem:
            click.echo(f"  application {r.app_id} {r.ssn_masked}: not registered: {r.problem}")
        elif r.cancelled:
            click.echo(
                f"  application {r.app_id} {r.ssn_masked}: card {r.card_no} replaces "
                f"{', '.join(r.cancelled)} (cancelled)"
            )
        elif r.replaces:
            click.echo(
                f"  application {r.app_id} {r.ssn_masked}: card {r.card_no} replaces lost card "
                f"{r.replaces}"
            )
        elif len(out) <= 20:  # the card numbers later commands take (more: registry list)
            click.echo(f"  application {r.app_id} {r.ssn_masked}: card {r.card_no}")
    if len(out) > 20:
        click.echo("  (every card number: registry list --state registered)")
    click.echo(
        f"registered {len(out) - len(bad)}, duplicates cancelled "
        f"{sum(len(r.cancelled) for r in out)}" + (f", not registered {len(bad)}" if bad else "")
    )
    if bad:
        sys.exit(1)


@registry_group.command("region")
@click.argument("region")
@click.option("--prefix", required=True, help="Two characters 0-9/A-Z that start its numbers.")
@DB_OPTION
def region_cmd(region: str, prefix: str, db_url: str) -> None:
    """Pin the card-number prefix of REGION (before its first card)."""
    with _registry(db_url) as db:
        cards.set_region_prefix(db, region, prefix)
    click.echo(f"region {region}: card numbers start with {prefix}")


@registry_group.command("export-batch")
@DB_OPTION
@BY_OPTION
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--batch", "batch_no", default=None, help="Batch number (default BYYYYMMDD-NNN).")
@click.option("--profile", default=None, help="Profile (default ssc3-pboc, or ssc3-temporary).")
@click.option("--issue-date", default=None, help="Issue date (default today).")
@click.option("--validity-years", type=int, default=10, show_default=True)
@click.option("--temporary", is_flag=True, help="Export account-failed applications instead.")
@click.option(
    "--sporadic", is_flag=True, help="Walk-ins only (5-working-day target): an instant line."
)
@click.option("--limit", type=click.IntRange(min=1), default=None)
def export_cmd(
    db_url: str,
    actor: str | None,
    out: Path,
    batch_no: str | None,
    profile: str | None,
    issue_date: str | None,
    validity_years: int,
    temporary: bool,
    sporadic: bool,
    limit: int | None,
) -> None:
    """Write registered applications as a data-preparation input file (mode 0600)."""
    _check_output("--out", out, db_url)
    with _registry(db_url) as db:
        batch = production.export_batch(
            db,
            out,
            actor=_actor(actor),
            batch_no=batch_no,
            profile=profile,
            issue_date=_day(issue_date, "issue_date") if issue_date else None,
            validity_years=validity_years,
            temporary=temporary,
            limit=limit,
            application_type="sporadic" if sporadic else None,
        )
    click.echo(
        f"batch {batch.batch_no}: {batch.records} {batch.kind} cards → {batch.file} "
        f"(prepare with: cardperso prep {batch.file} --profile {batch.profile} "
        f"--batch-id {batch.batch_no} …)"
    )


@registry_group.command("import-results")
@click.argument("results_file", type=click.Path(exists=True, dir_okay=False))
@DB_OPTION
@BY_OPTION
def import_results_cmd(results_file: str, db_url: str, actor: str | None) -> None:
    """Record the line's per-card results (cardperso run --results FILE)."""
    with _registry(db_url) as db:
        got = production.import_results(
            db, production.read_results_file(results_file), actor=_actor(actor)
        )
    for p in got.problems:
        click.echo(f"  {p}", err=True)
    click.echo(got.describe())
    if got.problems:
        sys.exit(1)


@registry_group.command("import-rejects")
@click.argument("rejects_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--batch", "batch_no", required=True, help="The batch the rejected file was.")
@DB_OPTION
@BY_OPTION
def import_rejects_cmd(rejects_file: str, batch_no: str, db_url: str, actor: str | None) -> None:
    """Record data preparation's rejects of an exported batch (cardperso prep --rejects FILE):
    the applications go to prep_rejected, to be requeued or cancelled."""
    rejects = prep_rejects.read_prep_rejects(rejects_file)
    with _registry(db_url) as db:
        got = prep_rejects.import_prep_rejects(db, batch_no, rejects, actor=_actor(actor))
    for line, card_no, ssn_masked, why in got.moved:
        click.echo(f"  line {line}: card {card_no} {ssn_masked}: prep_rejected: {why}")
    for p in got.problems:
        click.echo(f"  {p}", err=True)
    click.echo(
        f"batch {batch_no}: {got.describe()}"
        + (" (next: registry requeue CARD_NO or registry cancel)" if got.recorded else "")
    )
    if got.problems:
        sys.exit(1)


@registry_group.command("requeue")
@click.argument("card_no")
@click.option("--reason", required=True, help="What was fixed (transition log).")
@DB_OPTION
@BY_OPTION
def requeue_cmd(card_no: str, reason: str, db_url: str, actor: str | None) -> None:
    """Put a prep-rejected CARD_NO back in the queue for a later batch."""
    with _registry(db_url) as db:
        state = prep_rejects.requeue(db, card_no, reason=reason, actor=_actor(actor))
    nxt = "export-batch --temporary" if state == "account_failed" else "export-batch"
    click.echo(f"card {card_no}: {state} (goes into the next {nxt})")


@registry_group.command("accounts")
@click.argument("answers_file", type=click.Path(exists=True, dir_okay=False))
@DB_OPTION
@BY_OPTION
def accounts_cmd(answers_file: str, db_url: str, actor: str | None) -> None:
    """Record the bank's answers (CSV card_no,status,reason[,pan]; status opened|failed), or the
    bank stage's account-opening file (outcome account_opened|account_failed|no_account).
    Answers already recorded are reported as such."""
    answers = production.read_accounts_file(answers_file)
    with _registry(db_url) as db:
        got = production.record_answers(db, answers, actor=_actor(actor))
    for p in got.problems:
        click.echo(f"  {p}", err=True)
    click.echo(
        got.describe() + (" (temporary cards: export-batch --temporary)" if got.failed else "")
    )
    if got.problems:
        sys.exit(1)


@registry_group.command("notify")
@DB_OPTION
@BY_OPTION
@click.option("--date", "date", default=None, help="Notification date (default today).")
@click.option(
    "--sms",
    "sms_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the SMS gateway's upload file (phone, message, card_no).",
)
@click.option(
    "--letters",
    "letters_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write letters to print: cardholders and insured units.",
)
def notify_cmd(
    db_url: str,
    actor: str | None,
    date: str | None,
    sms_file: Path | None,
    letters_file: Path | None,
) -> None:
    """Notify the cardholders (and their insured units) whose cards are ready for collection,
    through the channels given; every message is recorded per channel."""
    channels: list[notices.Channel] = []
    for role, path in (("--sms", sms_file), ("--letters", letters_file)):
        if path is not None:
            _check_output(role, path, db_url)
    if sms_file:
        channels.append(notices.SmsFile(sms_file))
    if letters_file:
        channels.append(notices.Letters(letters_file))
    with _registry(db_url) as db:
        out = production.notify(db, date=_day(date, "date"), actor=_actor(actor))
        messages = notices.messages_for(db, [n.app_id for n in out], units=True)
        sent = notices.deliver(db, messages, channels) if out and channels else {}
    for n in out:
        tag = " (temporary card)" if n.kind == "temporary" else ""
        click.echo(f"  {n.card_no}  {n.ssn_masked}  region {n.region}{tag}")
    for name, k in sent.items():
        click.echo(f"  channel {name}: {k} message(s) sent")
    click.echo(f"{len(out)} card(s) ready for collection")


@registry_group.command("issue")
@click.argument("card_no")
@click.option("--to", "to", default="", help="Name of who collected (default: the holder).")
@click.option("--agent-id", "agent_id", default="", help="An agent collected: the agent's ID.")
@click.option("--service-point", "service_point", default="", help="Where (default: accepted).")
@click.option("--date", "date", required=True, help="Date of receipt (YYYY-MM-DD).")
@DB_OPTION
@BY_OPTION
def issue_cmd(
    card_no: str,
    to: str,
    agent_id: str,
    service_point: str,
    date: str,
    db_url: str,
    actor: str | None,
) -> None:
    """Record that CARD_NO was collected, by the holder or by an agent (--agent-id, --to)."""
    if agent_id and not to:
        raise DataError("an agent's collection needs the agent's name (--to)", field="to")
    day = parse_day(date, "date")
    with _registry(db_url) as db:
        cards.issue(
            db,
            card_no,
            to=to or "holder",
            date=f"{day:%Y%m%d}",
            actor=_actor(actor),
            agent_ssn=agent_id,
            service_point=service_point,
        )
    who = f" by agent {mask_id(agent_id.strip().upper())}" if agent_id else ""
    click.echo(f"card {card_no}: issued on {day.isoformat()}{who}")


@registry_group.command("cancel")
@click.argument("card_no")
@click.option("--reason", required=True, help="e.g. lost, withdrawn.")
@click.option(
    "--close-account", is_flag=True, help="Ask the bank to close the account, not block it."
)
@DB_OPTION
@BY_OPTION
def cancel_cmd(
    card_no: str, reason: str, close_account: bool, db_url: str, actor: str | None
) -> None:
    """Cancel CARD_NO (lost, withdrawn); its bank account is blocked (or closed)."""
    with _registry(db_url) as db:
        cards.cancel(db, card_no, reason=reason, actor=_actor(actor), close_account=close_account)
        asked = lost.pending_requests(db, card_no)
    kind = asked[-1][1] if asked else ""
    tail = f"; bank {kind} request queued (report bank-requests)" if kind else ""
    click.echo(f"card {card_no}: cancelled ({reason}){tail}")


@registry_group.command("history")
@click.argument("card_or_id")
@DB_OPTION
def history_cmd(card_or_id: str, db_url: str) -> None:
    """Every transition of an application (by card number or application id)."""
    with _registry(db_url) as db:
        if card_or_id.isdigit() and len(card_or_id) < 9:
            app_id = int(card_or_id)
        else:
            app_id = store.app_by_card(db, card_or_id).id
        for t in store.history(db, app_id):
            when = datetime.datetime.fromtimestamp(t.at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
            click.echo(
                f"{when}Z  {t.event:<17} {t.from_state or '-':>20} → {t.to_state:<20} "
                f"{t.card_no or '':9}  by {t.actor}{'  ' + t.detail if t.detail else ''}"
            )


@registry_group.group("report")
def report_group() -> None:
    """Reports for the social-security centre."""


@report_group.command("return-file")
@click.option("--batch", "batch_no", required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@DB_OPTION
def return_file_cmd(batch_no: str, out: Path, db_url: str) -> None:
    """The card-return report of a batch (CSV, personal data: mode 0600)."""
    _check_output("--out", out, db_url)
    with _registry(db_url) as db:
        n, failed = reports.return_file(db, batch_no, out)
    click.echo(
        f"return file of batch {batch_no}: {n} cards, {failed} failed → {out} "
        "(personal data, mode 0600)"
    )


@registry_group.command("overdue")
@DB_OPTION
@CALENDAR_OPTION
@click.option("--as-of", "as_of", default=None, help="Date to judge on (default today).")
@click.option(
    "--out",
    "out_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also as CSV.",
)
def overdue_cmd(
    db_url: str, calendar_file: str | None, as_of: str | None, out_csv: Path | None
) -> None:
    """Applications late or at risk against their time target (working days)."""
    day = _day(as_of, "as_of")
    if out_csv:
        _check_output("--out", out_csv, db_url)
    with _registry(db_url) as db:
        out = reports.overdue(db, load_calendar(calendar_file), day)
    if out_csv:
        breakdown.write_csv(out_csv, reports.OVERDUE_COLUMNS, reports.overdue_rows(out))
    for o in out:
        click.echo(
            f"  {o.status:<7} app {o.app_id:<6} {o.card_no or '-':9} {o.ssn_masked}  "
            f"{o.application_type:<8} {o.stage:<20} accepted {o.accepted.isoformat()} "
            f"due {o.due.isoformat()}  {o.days_left:+d} working days"
        )
    late = sum(o.days_left < 0 for o in out)
    click.echo(f"as of {day.isoformat()}: {late} late, {len(out) - late} at risk")


@registry_group.command("stats")
@DB_OPTION
@CALENDAR_OPTION
@click.option(
    "--out",
    "out_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also as CSV (measure, key, value).",
)
def stats_cmd(db_url: str, calendar_file: str | None, out_csv: Path | None) -> None:
    """Counts per stage and the distribution of lead times (working days to notification)."""
    if out_csv:
        _check_output("--out", out_csv, db_url)
    with _registry(db_url) as db:
        st = reports.stats(db, load_calendar(calendar_file))
    if out_csv:
        breakdown.write_csv(out_csv, reports.STATS_COLUMNS, reports.stats_rows(st))
    click.echo("stage counts:")
    for state, n in st.per_stage.items():
        click.echo(f"  {state:<22} {n}")
    for lt in st.lead_times:
        s = lt.summary()
        if not s:
            continue
        click.echo(
            f"lead time, {lt.application_type} (target {lt.target} working days): n {s['n']:.0f}, "
            f"min {s['min']:.0f}, median {s['median']:g}, p90 {s['p90']:.0f}, max {s['max']:.0f}, "
            f"within target {s['within_target']:.0f}"
        )
        click.echo("  " + "  ".join(f"{b}: {n}" for b, n in lt.histogram()))


for _command in [*registry_centre.COMMANDS, *registry_partners.COMMANDS]:
    registry_group.add_command(_command)
for _command in registry_centre.REPORTS:
    report_group.add_command(_command)

COMMANDS = [registry_group]
