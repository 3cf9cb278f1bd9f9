"""One database, many lines: four `cardperso run --join` processes share one batch on the real
PostgreSQL, and random SIGKILLs hit them; every record is produced exactly once, and the
results flow into the registry of the same database.

Each process is a line of its own (its own simulated printers and lab readers, station names
unique in the run); all the lines drop finished cards into one output hopper directory, the
`output_check` a crashed line's claims are judged by.
"""

from __future__ import annotations

import csv
import datetime
import functools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cardperso.errors import UsageError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.line.journal import JobSeed, Journal
from cardperso.line.linefile import LineOptions, LineSpec, StationSpec, dump_line
from cardperso.prep.container import iter_records
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.profiles.loader import load_profile
from cardperso.registry import applications, cards, production, schema, store
from cardperso.sim.line import SimLine
from cardperso.storage.db import Database
from test_registry import pg_url, write_applications  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_KEYS = ROOT / "keys-sample" / "keys.json"


def _registry_batch(url: str, tmp_path: Path, count: int) -> Path:
    """Applications taken through the registry to an exported batch, prepared."""
    write_applications(tmp_path / "apps", count, seed=11)
    profile = load_profile("ssc3-pboc")
    with Database(url) as db:
        schema.upgrade(db)
        applications.import_applications(db, tmp_path / "apps" / "apps.csv", profile, actor="t")
        applications.audit(db, profile, actor="t")
        applications.compare(
            db, tmp_path / "apps" / "population.csv", tmp_path / "apps" / "bank.csv", actor="t"
        )
        cards.register(db, actor="t")
        production.export_batch(db, tmp_path / "batch.csv", actor="t", batch_no="ML1")
    perso = tmp_path / "batch.perso"
    summary = prepare(
        tmp_path / "batch.csv", profile, SoftwareKeyStore.load(SAMPLE_KEYS),
        functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS), perso, tmp_path / "rejects.csv",
        PrepOptions(batch_id="ML1", created=1_700_000_000),
    )  # fmt: skip
    assert summary.prepared == count
    return perso


@pytest.mark.postgres
@pytest.mark.pcsc
@pytest.mark.slow
def test_four_lines_one_batch_random_sigkills(pcsc_lab, pg_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    count = 30  # enough work (with the chip latency below) that lines are killed mid-run
    perso = _registry_batch(pg_url, tmp_path, count)
    hopper = tmp_path / "hopper"
    hopper.mkdir()
    free = [s for s in pcsc_lab.slots if s.card is None]
    # stations per line: 2, 1, 2, 1 (1 each when parallel sessions left this one fewer readers)
    layout = [2, 1, 2, 1] if len(free) >= 6 else [1, 1, 1, 1]
    assert len(free) >= sum(layout), f"the lab lent this session {len(free)} free readers"
    options = LineOptions(
        card_timeout=5, pause_retry=0.2, max_attempts=10, output_check=str(hopper)
    )
    lines: list[SimLine] = []
    line_files: list[Path] = []
    taken = 0
    for k, n in enumerate(layout):
        state = tmp_path / f"line{k}"
        state.mkdir()
        (state / "output").symlink_to(hopper)  # one output hopper for every line
        sim = SimLine(
            n,
            state,
            readers=free[taken : taken + n],
            apdu_latency=0.015,
            options=options,  # type: ignore[arg-type]
        )
        taken += n
        lines.append(sim)
    rng = random.Random(20261123)
    env = dict(os.environ, CI="true")
    try:
        for k, sim in enumerate(lines):
            sim.start()
            spec = LineSpec(
                tuple(
                    StationSpec(f"L{k}-{s.name}", s.printer, s.reader) for s in sim.spec.stations
                ),
                options,
            )
            path = tmp_path / f"line{k}" / "join.yaml"
            path.write_text(dump_line(spec))
            line_files.append(path)

        def start(k: int) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [
                    sys.executable, "-m", "cardperso", "run", str(perso),
                    "--line", str(line_files[k]), "--keys", str(SAMPLE_KEYS), "--db", pg_url,
                    "--results", str(tmp_path / f"results{k}.csv"), "--join", "--stale-after", "3",
                ],
                env=env,
                stdout=open(tmp_path / f"out{k}.log", "ab"),
                stderr=subprocess.STDOUT,
            )  # fmt: skip

        procs = [start(k) for k in range(len(lines))]
        kills = 0
        deadline = time.monotonic() + 30
        while kills < 4 and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.8, 2.0))
            alive = [k for k, p in enumerate(procs) if p.poll() is None]
            if len(alive) < len(procs):
                break  # the run is finishing: no more kills
            victim = rng.choice(alive)
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            kills += 1
            if rng.random() < 0.5:
                time.sleep(
                    rng.uniform(3.5, 5.0)
                )  # long enough for the others to release its claims
            procs[victim] = start(victim)
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for sim in lines:
            sim.stop()
    logs = "\n".join((tmp_path / f"out{k}.log").read_text(errors="replace") for k in range(4))
    assert codes == [0, 0, 0, 0], logs
    assert "problem" not in logs, logs  # every line's feed into the registry agreed
    assert kills >= 2, "lines must have been killed mid-run"
    records = sorted(line for line, _ in iter_records(perso, SoftwareKeyStore.load(SAMPLE_KEYS)))
    with (tmp_path / "results0.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["record"]) for r in rows) == records
    assert all(r["outcome"] == "produced" for r in rows), rows
    produced = {p.stem for p in hopper.glob("*.json") if not p.name.endswith(".tracks.json")}
    assert len(produced) == count, "every record produced exactly once: no card twice, none lost"
    assert produced == {r["chip_serial"] for r in rows}, "each record paired with its chip"
    assert len({r["station"] for r in rows}) >= 3, "the work was shared between lines"
    # the results flowed into the registry of the same database (no file)
    with Database(pg_url) as db:
        apps = store.select_apps(db)
        assert {a.state for a in apps} == {"personalized"}
        serials = {
            str(s)
            for (s,) in db.execute("SELECT chip_serial FROM reg_cards WHERE batch_no = 'ML1'")
        }
        assert serials == produced


@pytest.mark.postgres
def test_join_creates_once_and_respects_live_claims(pg_url: str) -> None:  # noqa: F811
    """Two lines joining one run: the run is created once; a live line's claims survive the
    other's stale sweep; a dead line's claims are released; a lost claim raises."""
    from cardperso.line.journal import ClaimLost

    seeds = [JobSeed(i, f"C{i:08d}") for i in range(4)]
    with Database(pg_url) as a_db, Database(pg_url) as b_db:
        a, b = Journal(a_db, "JOIN1"), Journal(b_db, "JOIN1")
        assert a.create_or_join(seeds, source="f", digest="d", max_attempts=5) is True
        assert b.create_or_join(seeds, source="f", digest="d") is False
        assert b.max_attempts == 5 and a.counts()["queued"] == 4
        with pytest.raises(UsageError, match="made from another file"):
            Journal(b_db, "JOIN1").create_or_join(seeds, source="f", digest="other")
        a.hold_stations("hostA:1:aa", ["A1"], stale_after=3)
        with pytest.raises(UsageError, match="station A1 of run JOIN1 is held by a live line"):
            b.hold_stations("hostB:2:bb", ["A1"], stale_after=3)
        b.hold_stations("hostB:2:bb", ["B1"], stale_after=3)
        ja = a.claim("A1")
        jb = b.claim("B1")
        assert ja and jb
        b.beat("hostB:2:bb", ["B1"])
        # line A stops beating; 2 s later B sweeps with stale_after=1: only A's job is released
        a_db.execute("UPDATE line_jobs SET heartbeat_at = heartbeat_at - 2 WHERE station = 'A1'")
        released = b.recover(stale_after=1)
        assert [j.index for j in released] == [ja.index]
        # A wakes up and tries to go on: its claim is gone
        with pytest.raises(ClaimLost):
            a.chip_ok(ja, chip_serial="01020304", atr="3B")
        again = b.claim("B1")  # B makes the record again
        assert again is not None and again.index == ja.index
        b.confirm(jb)
        b.printed(b.chip_ok(jb, chip_serial="0A0B0C0D", atr="3B"))
        assert b.in_flight() == 1


@pytest.mark.pcsc
def test_whole_lifecycle_with_a_real_line_on_sqlite(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Import to issuance from the command line, one line on one SQLite file: the line's
    results reach the registry by themselves, and the return file carries the real chips."""
    from test_registry import run_cli

    url = ["--db", str(tmp_path / "factory.db")]
    apps = tmp_path / "apps"
    write_applications(apps, 3, seed=5)
    run_cli("db", "upgrade", *url)
    run_cli("registry", "import", str(apps / "apps.csv"), *url)
    run_cli("registry", "audit", *url)
    run_cli(
        "registry", "compare", *url, "--population", str(apps / "population.csv"),
        "--bank", str(apps / "bank.csv"),
    )  # fmt: skip
    run_cli("registry", "register", *url)
    run_cli("registry", "export-batch", *url, "--out", str(tmp_path / "b.csv"), "--batch", "S1")
    perso = tmp_path / "b.perso"
    run_cli(
        "prep", str(tmp_path / "b.csv"), "--profile", "ssc3-pboc", "--keys", str(SAMPLE_KEYS),
        "--out", str(perso), "--rejects", str(tmp_path / "rej.csv"), "--batch-id", "S1",
        "--created", "2026-01-20T00:00:00Z",
    )  # fmt: skip
    free = [s for s in pcsc_lab.slots if s.card is None][:2]
    assert free, "no free lab reader"
    sim = SimLine(len(free), tmp_path / "line", readers=free, options=LineOptions(card_timeout=5))  # type: ignore[arg-type]
    with sim:
        out = run_cli(
            "run", str(perso), "--line", str(tmp_path / "line" / "line.yaml"),
            "--keys", str(SAMPLE_KEYS), *url, "--results", str(tmp_path / "results.csv"),
        )  # fmt: skip
    assert "registry: 3 personalized" in out
    with Database(tmp_path / "factory.db") as db:
        numbers = [a.card_no for a in store.select_apps(db)]
    (tmp_path / "bank.csv").write_text(
        "card_no,status,reason\n" + "".join(f"{n},opened,\n" for n in numbers)
    )
    run_cli("registry", "accounts", str(tmp_path / "bank.csv"), *url)
    assert "3 card(s) ready" in run_cli("registry", "notify", *url)
    # issued today: the card was notified today, and a receipt cannot come before it
    today = datetime.date.today().isoformat()
    run_cli("registry", "issue", numbers[0], "--to", "本人", "--date", today, *url)
    ret = tmp_path / "return.csv"
    run_cli("registry", "report", "return-file", "--batch", "S1", "--out", str(ret), *url)
    with ret.open(encoding="utf-8") as fh:
        back = {r["card_no"]: r for r in csv.DictReader(fh)}
    produced = {p.stem for p in (tmp_path / "line" / "output").glob("*.json")}
    produced = {p for p in produced if not p.endswith(".tracks")}
    assert set(back) == set(numbers)
    assert {r["card_id_code"][16:24] for r in back.values()} == produced  # chip serial inside
    assert all(r["atr"] and r["bank_card_no"] for r in back.values())
