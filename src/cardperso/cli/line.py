"""``cardperso run``, ``cardperso line resume-station``, ``cardperso sim line`` and ``cardperso demo``."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import click

from cardperso.card.state import GP_TEST_KEY
from cardperso.chip.model import CardData, ChipPlan
from cardperso.chip.script import Steps, personalize
from cardperso.cli.keys import open_store
from cardperso.cli.production import (
    check_production,
    perso_file_is_production,
    production_options,
)
from cardperso.cli.sim import sim_group, transport_key, transport_key_options
from cardperso.devices import pcsc
from cardperso.errors import ProfileError, UsageError
from cardperso.keystore.base import KeyStore
from cardperso.line.linefile import LineOptions, load_line
from cardperso.line.runner import ChipWorkflow, LineRun, RunSummary, request_resume
from cardperso.outputs import check_paths
from cardperso.profiles.model import Profile
from cardperso.sim.line import SimLine
from cardperso.storage.db import Database, connect

DEFAULT_DB = "cardperso-journal.db"
#: The largest bank transport-key delivery file `run --bank-delivery` reads (it is a few
#: hundred bytes of JSON).
MAX_DELIVERY = 1 << 20
#: The first vpcd port of the demo's `sim serve` hint (clear of Debian's entry, the test lab
#: and `sim line`).
SERVE_PORT = 36400


def _live_view(run: LineRun, started: float) -> None:
    """One status line per station, redrawn in place on a terminal."""
    counts = run.journal.counts()
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = counts["done"] / elapsed * 3600
    lines = [
        f"done {counts['done']}  queued {counts['queued']}  on stations "
        f"{counts['encoding'] + counts['chip_done']}  given up {counts['failed']}  "
        f"{rate:,.0f} cards/hour"
    ]
    for st in run.stations:
        s = st.status
        msg = f" - {s.message}" if s.message else ""
        lines.append(f"  {s.name:<6} {s.state:<8} made {s.made:<5} rejected {s.rejected:<4}{msg}")
    sys.stderr.write(
        "\x1b[2K" + "\n\x1b[2K".join(lines) + f"\x1b[{len(lines) - 1}F\r" if len(lines) > 1 else ""
    )
    sys.stderr.flush()


def _print_summary(summary: RunSummary, results: Path) -> None:
    c = summary.counts
    click.echo(
        f"run {summary.run_id}: {c['done']} produced, {c['failed']} rejected for good, "
        f"{c['queued'] + c['encoding'] + c['chip_done']} not finished, in {summary.seconds:.1f} s"
    )
    for s in summary.stations:
        busy = f"{s.busy_seconds / summary.seconds:.0%}" if summary.seconds else "-"
        click.echo(f"  station {s.name}: {s.made} made, {s.rejected} cards rejected, busy {busy}")
    if summary.apdus_per_card:
        click.echo(f"  {summary.apdus_per_card:.0f} APDUs per card")
    click.echo(f"per-card results: {results}")
    if summary.stopped:
        click.echo(f"LINE STOPPED: {summary.stopped}", err=True)


def _run(
    perso: Path,
    line: object,
    keys_spec: str,
    db_url: str,
    resume: bool,
    results: Path,
    scp: str | None,
    live: bool,
    *,
    join: bool = False,
    stale_after: float = 15.0,
    production: bool = False,
    allow_software_keystore: bool = False,
    bank_delivery: Path | None = None,
) -> RunSummary:
    store = open_store(keys_spec)
    workflow = _chip_workflow(perso, bank_delivery, store)
    check_production(
        store,
        production=production or perso_file_is_production(perso),
        allow_software_keystore=allow_software_keystore,
        what=f"run {perso.name}",
    )
    db = Database(db_url)
    try:
        # -vv: the APDU trace of every station (secrets redacted) goes to the debug log
        trace = pcsc.log_trace() if pcsc.log.isEnabledFor(logging.DEBUG) else None
        run = LineRun(
            perso, line, store, db, resume=resume, scp=scp, trace=trace,  # type: ignore[arg-type]
            join=join, stale_after=stale_after, workflow=workflow,
        )  # fmt: skip
        click.echo(
            f"run {run.journal.run_id}: {len(run.records)} records on {len(run.stations)} stations"
        )
        started = time.monotonic()
        tick = functools.partial(_live_view, started=started) if live else None
        summary = run.run(results, on_tick=tick)
        if live:
            sys.stderr.write("\n" * (len(run.stations) + 1))
        _feed_registry(db, summary)
        return summary
    finally:
        db.close()


def _chip_workflow(perso: Path, bank_delivery: Path | None, store: KeyStore) -> ChipWorkflow:
    """The line's chip workflow, or for a two-stage profile the factory's: the line's workflow
    (SSSE), then the bank's security domain with the transport keys from ``bank_delivery``
    (checked against ``store`` before any card: :func:`cardperso.bank.factory.check_delivery`)."""
    from cardperso.bank.factory import check_delivery, factory_card
    from cardperso.bank.twostage import TransportDelivery, load_two_stage
    from cardperso.prep.container import read_header

    with perso.open("rb") as fh:
        header, _ = read_header(fh)
    try:
        two = load_two_stage(header.profile)
    except ProfileError:
        if bank_delivery is not None:
            raise UsageError(
                f"profile {header.profile} is not two-stage: --bank-delivery does not apply"
            ) from None
        return personalize
    if bank_delivery is None:
        raise UsageError(
            f"profile {header.profile} is two-stage: pass the bank's transport-key delivery file with --bank-delivery"
        )
    sent = TransportDelivery.from_json(
        bank_delivery.read_text(encoding="utf-8"), str(bank_delivery)
    )
    check_delivery(two, store, sent)

    def factory(card: CardData, plan: ChipPlan, keys: KeyStore) -> Steps:
        result = yield from factory_card(two, card, plan, keys, sent)
        return result.chip

    return factory


def _feed_registry(db: Database, summary: RunSummary) -> None:
    """When the registry lives in the journal's database, the run's results flow into it."""
    from cardperso.registry.production import absorb_run, registry_present

    if not registry_present(db):
        return
    moved = absorb_run(db, summary.run_id, actor=f"line run {summary.run_id}")
    if moved.total:
        click.echo(f"registry: {moved.describe()}")


@click.command("run")
@click.argument("perso_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--line", "line_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--keys", "-k", "keys_spec", required=True, help="Key store (file or pkcs11:CONFIG).")
@click.option(
    "--db",
    "db_url",
    default=DEFAULT_DB,
    show_default=True,
    help="Journal: SQLite file or postgresql:// URL.",
)
@click.option("--resume", is_flag=True, help="Continue a run that was interrupted.")
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Per-card result file (default: PERSO_FILE.results.csv).",
)
@click.option(
    "--scp", type=click.Choice(["02", "03"]), default=None, help="Override the profile's SCP."
)
@click.option(
    "--join",
    is_flag=True,
    help="Work the run together with other lines (create it if absent); see docs/registry.md.",
)
@click.option(
    "--stale-after",
    type=float,
    default=15.0,
    show_default=True,
    help="With --join: seconds without a heartbeat after which another line's claims are released.",
)
@click.option(
    "--bank-delivery",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Two-stage profiles: the bank's transport-key delivery file (bank SSD created per card).",
)
@production_options
def run_cmd(
    perso_file: Path,
    line_file: str,
    keys_spec: str,
    db_url: str,
    resume: bool,
    results: Path | None,
    scp: str | None,
    join: bool,
    stale_after: float,
    bank_delivery: Path | None,
    production: bool,
    allow_software_keystore: bool,
) -> None:
    """Personalize and print the cards of PERSO_FILE on the line described by LINE.yaml."""
    results = results or perso_file.with_suffix(".results.csv")
    _check_run_paths(results, perso_file, line_file, keys_spec, db_url, bank_delivery)
    summary = _run(
        perso_file,
        load_line(line_file),
        keys_spec,
        db_url,
        resume,
        results,
        scp,
        live=sys.stderr.isatty() and not os.environ.get("CI"),
        join=join,
        stale_after=stale_after,
        production=production,
        allow_software_keystore=allow_software_keystore,
        bank_delivery=bank_delivery,
    )
    _print_summary(summary, results)
    if summary.stopped:
        sys.exit(3)
    if summary.failed:
        sys.exit(1)


def _check_run_paths(
    results: Path,
    perso: Path,
    line_file: str,
    keys_spec: str,
    db_url: str,
    bank_delivery: Path | None,
) -> None:
    """Refuse input files that are not regular files (a FIFO would hang the run, a device be
    read without end) and a results file that is one of the run's inputs (it would be
    overwritten)."""
    for role, path in (("PERSO_FILE", perso), ("--bank-delivery", bank_delivery)):
        if path is not None and not path.is_file():
            raise UsageError(f"{role} {path} is not a regular file")
    if bank_delivery is not None and bank_delivery.stat().st_size > MAX_DELIVERY:
        raise UsageError(f"--bank-delivery {bank_delivery} is too large for a delivery file")
    keys = keys_spec.split(":", 1)[1] if keys_spec.startswith("pkcs11:") else keys_spec
    db: str | None = db_url
    if "://" in db_url:  # sqlite:///PATH is a file; postgresql://… is not
        db = db_url.split("://", 1)[1] if db_url.startswith("sqlite:") else None
    check_paths(
        outputs={"--results": results},
        inputs={
            "PERSO_FILE": perso,
            "--line": line_file,
            "--keys": keys,
            "--db": db,
            "--bank-delivery": bank_delivery,
        },
    )


@click.group("line")
def line_group() -> None:
    """Operator commands for a running line."""


@line_group.command("resume-station")
@click.argument("station")
@click.option("--run", "run_id", required=True, help="The run id `cardperso run` printed.")
@click.option("--db", "db_url", default=DEFAULT_DB, show_default=True)
def resume_station(station: str, run_id: str, db_url: str) -> None:
    """Tell a paused STATION that its fault is cleared (it retries at once)."""
    with connect(db_url) as db:  # the run's journal must exist: never create a database
        request_resume(db, run_id, station)
    click.echo(f"station {station} of run {run_id}: resume requested")


def _serve_until_signal(line: SimLine) -> None:
    """Run until SIGINT/SIGTERM; clear printer faults when ``clear-faults`` asks for it."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    request = line.state_dir / "clear-faults"
    while not done.wait(0.3):
        if request.exists():
            names = set(request.read_text().split()) or {s.name for s in line.stations}
            for st in line.stations:
                if st.name in names:
                    st.clear_faults()
            request.unlink()


@sim_group.command("line")
@click.option("--stations", "-n", type=int, default=2, show_default=True)
@click.option(
    "--state", "state_dir", required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--faults", default=None, help="e.g. 'st1:mute@2,st2:ribbon_out@3' (see docs/line.md)."
)
@click.option(
    "--chip-latency", type=float, default=0.0, show_default=True, help="Seconds per APDU."
)
@click.option("--scp", type=click.Choice(["02", "03"]), default="02", show_default=True)
@click.option("--port", type=int, default=36200, show_default=True, help="First vpcd port.")
@click.option(
    "--chips", default="gp", show_default=True,
    help="The hopper's chips in feeding order, repeated: gp, native (SM4), native-3des.",
)  # fmt: skip
@click.option(
    "--native-transport-key", "native_hex", default=None, metavar="HEX",
    help="The native chips' transport master (16 bytes; diversified by each chip's serial; "
    "default: the sample store's native-transport, the GP test key).",
)  # fmt: skip
@transport_key_options
def sim_line(
    stations: int,
    state_dir: Path,
    faults: str | None,
    chip_latency: float,
    scp: str,
    port: int,
    chips: str,
    native_hex: str | None,
    transport_hex: str | None,
    transport_store: str | None,
    transport_key_name: str | None,
) -> None:
    """Start N simulated printers (ptys) with virtual card readers; write DIR/line.yaml.

    The blank cards carry the card vendor's transport key: the GP test key, or the one given
    with --transport-key HEX or --keys STORE (so that a fresh issuer key store whose
    ``gp-transport`` came by key ceremony opens them)."""
    key = transport_key(transport_hex, transport_store, transport_key_name, scp)
    try:
        native = bytes.fromhex(native_hex) if native_hex else b""
    except ValueError:
        raise click.UsageError("--native-transport-key: not hex") from None
    if native_hex and len(native) != 16:
        raise click.UsageError("--native-transport-key: 16 bytes")
    line = SimLine(
        stations, state_dir, faults=faults, scp=scp, apdu_latency=chip_latency, port=port,
        transport_key=key, chips=tuple(c.strip() for c in chips.split(",")),
        native_transport={"SM4": native, "3DES": native} if native else None,
    )  # fmt: skip
    line.start()
    try:
        click.echo(f"{stations} simulated stations ready; line file: {state_dir / 'line.yaml'}")
        for st in line.stations:
            click.echo(f"  {st.name}: printer {st.pty.port}, reader {st.reader.name!r}")
        click.echo(
            "finished cards go to output/, rejected cards to rejects/; Ctrl-C stops the line"
        )
        _serve_until_signal(line)
    finally:
        line.stop()


@sim_group.command("clear-faults")
@click.option(
    "--state", "state_dir", required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.argument("stations", nargs=-1)
def sim_clear_faults(state_dir: Path, stations: tuple[str, ...]) -> None:
    """Clear the printer faults of a running `sim line` (all stations, or those named): what an
    operator does at the machine before `cardperso line resume-station`."""
    (state_dir / "clear-faults").write_text(" ".join(stations))
    click.echo("printer faults will be cleared within a second")


@click.command("demo")
@click.option(
    "--count", type=int, default=12, show_default=True, help="Cards in the synthetic batch."
)
@click.option("--stations", "-n", type=int, default=3, show_default=True)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
)
@click.option(
    "--keys", "-k", "keys_spec", default=None, help="Key store (default: the sample TEST keys)."
)
def demo_cmd(count: int, stations: int, state_dir: Path | None, keys_spec: str | None) -> None:
    """The whole flow on a simulated line: a synthetic batch (with a few bad records) is
    validated and prepared into a protected perso file, then personalized and printed."""
    from cardperso.cli.pki import demo_check, demo_product
    from cardperso.prep.oda_run import count_lines
    from cardperso.prep.pipeline import PrepOptions, prepare
    from cardperso.prep.synth import make_batch

    keys_spec = keys_spec or str(_sample_keys())
    state_dir = (state_dir or Path("demo-out") / time.strftime("run-%Y%m%d-%H%M%S")).resolve()
    if (state_dir / "journal.db").exists():
        raise UsageError(f"{state_dir} holds a previous demo: remove it or pass --state NEWDIR")
    state_dir.mkdir(parents=True, exist_ok=True)
    batch = state_dir / "batch.csv"
    counts = make_batch(batch, count, seed=2026, errors=max(1, count // 6))
    click.echo(
        f"1. batch: {counts['records']} records ({counts['bad']} deliberately bad) → {batch}"
    )
    store = open_store(keys_spec)
    perso = state_dir / "batch.perso"
    profile = demo_product(store, state_dir)  # the reference product, with the PKI application
    pool = _demo_pool(profile, store, keys_spec, state_dir, count_lines(batch) - 1)
    summary = prepare(
        batch, profile, store, functools.partial(open_store, keys_spec), perso,
        state_dir / "rejects.csv",
        PrepOptions(batch_id="DEMO", created=int(time.time()), icc_pool=pool),
    )  # fmt: skip
    click.echo(
        f"2. prepared: read {summary.read} = {summary.prepared} prepared + {summary.rejected} rejected "
        f"→ {perso} (rejects: {state_dir / 'rejects.csv'})"
    )
    # the simulated blanks carry the store's card-vendor transport key (the sample's is the
    # GP test key); a store without one is refused by the line's pre-flight, no card spent
    key = (
        transport_key(None, keys_spec, None, "02")
        if "gp-transport" in store.names()
        else GP_TEST_KEY
    )
    line = _make_sim_line(stations, state_dir / "line", transport_key=key)
    line.start()
    try:
        click.echo(
            f"3. simulated line: {stations} stations (printers on ptys, readers behind pcscd + vpcd)"
        )
        results = state_dir / "results.csv"
        run_summary = _run(
            perso,
            line.spec,
            keys_spec,
            str(state_dir / "journal.db"),
            False,
            results,
            None,
            live=sys.stderr.isatty() and not os.environ.get("CI"),
        )
        pki: tuple[bool, str] | None = None  # one made card checked as `pki verify` does
        if profile.pki is not None and run_summary.counts["done"]:
            pki = demo_check(line.stations[0].reader, state_dir, perso, store)
    finally:
        line.stop()
    _print_summary(run_summary, results)
    if pki is not None:  # the last check of the run; the serve hint stays the last line
        click.echo(
            f"PKI check, `pki verify` on one card: {pki[1]}" + ("" if pki[0] else " - FAILED")
        )
    out = state_dir / "line" / "output"
    click.echo(
        f"4. cards: images and printed faces in {out}, rejected cards in {state_dir / 'line' / 'rejects'}"
    )
    click.echo(
        "   inspect them with any PC/SC tool (as root; the first 14, or pick with --only SERIAL): "
        f"cardperso sim serve --cards {out} --port {SERVE_PORT} --write-readers "
        f"{state_dir / 'serve-readers'} --start-pcscd"
    )
    if run_summary.stopped or run_summary.failed or (pki is not None and not pki[0]):
        sys.exit(1)


def _demo_pool(
    profile: Profile, store: KeyStore, keys_spec: str, state_dir: Path, lines: int
) -> str | None:
    """The demo's own small ICC key pool (one key per input line; offline data
    authentication, docs/keystore.md) in the state directory: a fresh machine needs no
    `keys pool generate` first (~20 ms per 1024-bit key and core)."""
    from cardperso.prep.oda_run import ensure_pool

    made = ensure_pool(
        profile, store, functools.partial(open_store, keys_spec), state_dir / "icc-pool", lines
    )
    if made is None:
        return None
    directory, count, seconds = made
    click.echo(f"   ICC key pool: {count} keys made in {seconds:.1f} s → {directory}")
    return directory


def _make_sim_line(stations: int, state_dir: Path, *, transport_key: bytes) -> SimLine:
    """The demo's simulated line (its own pcscd and vpcd readers)."""
    return SimLine(
        stations,
        state_dir,
        options=LineOptions(card_timeout=10, pause_retry=0.5),
        transport_key=transport_key,
    )


def _sample_keys() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "keys-sample" / "keys.json"
        if candidate.exists():
            return candidate
    raise UsageError("keys-sample/keys.json not found: pass --keys")


COMMANDS = [run_cmd, line_group, demo_cmd]
