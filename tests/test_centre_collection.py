# ruff: noqa: F811 - pytest fixtures imported from test_registry are parameters here
"""Issue 15, notification and collection: channels (SMS gateway file, letters, a gateway
interface with a fake gateway: the one fake, an SMS gateway cannot run here), recorded per
channel; boxes to the service points and their receipt; collection by the holder or by an
agent (the agent's identity number masked in every output). SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from cardperso.codec.numbers import mask_id
from cardperso.registry import notices, store
from cardperso.storage.db import connect
from test_centre_acceptance import GOOD, setup_lists, write_centre_apps
from test_integrity_registry import _applications
from test_registry import (  # the registry tests' fixtures and helpers
    _fake_line_results,
    db_url,  # noqa: F401 - fixture
    pg_url,  # noqa: F401 - fixture
    run_cli,
)

AGENT = "360426199101010071"  # a valid identity number (reference shelf)


def _accounts_opened(url: str, tmp_path: Path, n: int = 3) -> list[dict[str, str]]:
    """``n`` applications at SP01 (the last without a phone), made, accounts opened."""
    recs = _applications(tmp_path, n)
    setup_lists(url, [])
    extra = [dict(GOOD, phone="" if i == n - 1 else f"1391234567{i}") for i in range(n)]
    db = ["--db", url]
    run_cli("registry", "import", str(write_centre_apps(tmp_path, recs, extra)), *db)
    run_cli("registry", "audit", *db)
    run_cli("registry", "compare", *db, "--population", str(tmp_path / "population.csv"),
            "--bank", str(tmp_path / "bank.csv"))  # fmt: skip
    run_cli("registry", "register", *db)
    run_cli("registry", "export-batch", *db, "--out", str(tmp_path / "B1.csv"), "--batch", "B1")
    rows = _fake_line_results(tmp_path / "B1.csv", tmp_path / "r.csv")
    run_cli("registry", "import-results", str(tmp_path / "r.csv"), *db)
    with (tmp_path / "acc.csv").open("w", encoding="utf-8") as fh:
        fh.write("card_no,status\n" + "".join(f"{r['card_no']},opened\n" for r in rows))
    run_cli("registry", "accounts", str(tmp_path / "acc.csv"), *db)
    return rows


class FakeGateway:
    """Stands in for an SMS gateway's API: keeps what it was asked to send; refuses one number."""

    def __init__(self, refuse: str = "") -> None:
        self.sent: list[tuple[str, str]] = []
        self.refuse = refuse

    def send(self, address: str, text: str) -> str:
        if address == self.refuse:
            raise ConnectionError("gateway said no")
        self.sent.append((address, text))
        return f"GW{len(self.sent):04d}"


def test_notification_through_every_channel_recorded_per_channel(
    db_url: str, tmp_path: Path
) -> None:
    rows = _accounts_opened(db_url, tmp_path)
    sms, letters = tmp_path / "sms.csv", tmp_path / "letters.txt"
    out = run_cli("registry", "notify", "--date", "2026-02-02", "--sms", str(sms), "--letters",
                  str(letters), "--db", db_url)  # fmt: skip
    assert "3 card(s) ready for collection" in out
    assert "channel sms-file: 2 message(s) sent" in out  # the third has no phone
    assert "channel letter: 6 message(s) sent" in out  # three holders, three unit letters
    with sms.open(encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert [(g["phone"], g["card_no"]) for g in got] == [
        ("13912345670", rows[0]["card_no"]), ("13912345671", rows[1]["card_no"])
    ]  # fmt: skip
    assert "南山街道社保服务点" in got[0]["message"]
    assert rows[0]["name"] not in got[0]["message"] and rows[0]["ssn"] not in got[0]["message"]
    pages = letters.read_text(encoding="utf-8").split("\f")
    assert len(pages) == 6 and pages[0].startswith(rows[0]["name"] + "：")
    assert pages[1].startswith("深圳市甲科技有限公司（U1001）：") and rows[0]["name"] in pages[1]
    assert oct(sms.stat().st_mode & 0o777) == "0o600"
    # a gateway (the centre's API client) through the same interface: here a fake gateway
    gateway = FakeGateway(refuse="13912345671")
    with connect(db_url) as db:
        apps = store.select_apps(db)
        msgs = notices.messages_for(db, [a.id for a in apps], units=True)
        sent = notices.deliver(db, msgs, [notices.GatewayChannel(gateway)])
    assert sent == {"gateway": 1}
    assert gateway.sent == [("13912345670", msgs[0].text)]
    shown = json.loads(run_cli("registry", "show", rows[1]["card_no"], "--json", "--db", db_url))
    assert [(n["channel"], n["recipient"], n["status"]) for n in shown["card"]["notifications"]] == [
        ("sms-file", "holder", "sent"), ("letter", "holder", "sent"),
        ("letter", "unit U1001", "sent"), ("gateway", "holder", "failed"),
    ]  # fmt: skip
    assert shown["card"]["notifications"][-1]["detail"] == "gateway refused: ConnectionError"
    third = json.loads(run_cli("registry", "show", rows[2]["card_no"], "--json", "--db", db_url))
    assert ("sms-file", "failed", "no phone") in [
        (n["channel"], n["status"], n["detail"]) for n in third["card"]["notifications"]
    ]


def test_boxes_travel_to_the_service_point_and_gate_collection(db_url: str, tmp_path: Path) -> None:
    rows = _accounts_opened(db_url, tmp_path)
    db = ["--db", db_url]
    run_cli("registry", "notify", "--date", "2026-02-02", *db)
    manifest = tmp_path / "box1.csv"
    out = run_cli("registry", "box", "pack", "--service-point", "SP01", "--manifest",
                  str(manifest), "--box", "BOX1", *db)  # fmt: skip
    assert "box BOX1: 3 card(s) for SP01" in out
    with manifest.open(encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert [(g["box_no"], g["card_no"], g["ssn_masked"]) for g in got] == sorted(
        ("BOX1", r["card_no"], mask_id(r["ssn"])) for r in rows
    )
    err = run_cli("registry", "box", "pack", "--service-point", "SP01", "--manifest",
                  str(tmp_path / "box2.csv"), *db, code=2)  # fmt: skip
    assert "no made card of service point SP01 waits for a box" in err
    no = rows[0]["card_no"]
    err = run_cli("registry", "issue", no, "--date", "2026-02-03", *db, code=2)
    assert f"card {no} is in box BOX1, not yet received at service point SP01" in err
    assert "received at SP01 by 张站长" in run_cli(
        "registry", "box", "receive", "BOX1", "--by", "张站长", "--date", "2026-02-03", *db
    )
    err = run_cli("registry", "box", "receive", "BOX1", "--by", "x", *db, code=2)
    assert "was received on 20260203 already" in err
    err = run_cli("registry", "issue", no, "--date", "2026-02-03", "--service-point", "SP02", *db,
                  code=2)  # fmt: skip
    assert f"card {no} is at service point SP01, not SP02" in err
    assert "issued on 2026-02-03" in run_cli("registry", "issue", no, "--date", "2026-02-03", *db)
    assert "received 20260203 by 张站长" in run_cli("registry", "box", "list", *db)


def test_collection_by_the_holder_and_by_an_agent(db_url: str, tmp_path: Path) -> None:
    rows = _accounts_opened(db_url, tmp_path)
    db = ["--db", db_url]
    run_cli("registry", "notify", "--date", "2026-02-02", *db)
    holder, proxy = rows[0]["card_no"], rows[1]["card_no"]
    run_cli("registry", "issue", holder, "--date", "2026-02-03", *db)
    err = run_cli("registry", "issue", proxy, "--date", "2026-02-03", "--agent-id", AGENT, *db,
                  code=1)  # fmt: skip
    assert "needs the agent's name (--to)" in err
    err = run_cli("registry", "issue", proxy, "--date", "2026-02-03", "--agent-id",
                  AGENT[:-1] + "2", "--to", "李四", *db, code=1)  # fmt: skip
    assert f"record card {proxy}, field 'agent_id'" in err and AGENT[:-1] + "2" not in err
    err = run_cli("registry", "issue", proxy, "--date", "2026-02-03", "--agent-id",
                  rows[1]["ssn"], "--to", "李四", *db, code=1)  # fmt: skip
    assert "is the cardholder's own number" in err and rows[1]["ssn"] not in err
    out = run_cli("registry", "issue", proxy, "--date", "2026-02-03", "--agent-id", AGENT,
                  "--to", "李四", "--service-point", "SP02", *db)  # fmt: skip
    assert f"issued on 2026-02-03 by agent {mask_id(AGENT)}" in out and AGENT not in out
    shown = json.loads(run_cli("registry", "show", proxy, "--json", *db))
    card = shown["card"]
    assert (card["collected_by"], card["agent_ssn"], card["collected_at"]) == (
        "agent",
        mask_id(AGENT),
        "SP02",
    )
    assert shown["history"][-1]["detail"] == (
        f"collected on 20260203 by agent {mask_id(AGENT)} at SP02"
    )
    text = run_cli("registry", "show", proxy, *db) + run_cli("registry", "history", proxy, *db)
    assert AGENT not in text
    mine = json.loads(run_cli("registry", "show", holder, "--json", *db))["card"]
    assert (mine["collected_by"], mine["agent_ssn"], mine["collected_at"]) == ("holder", "", "SP01")
    with connect(db_url) as conn:  # the registry keeps the agent's number itself
        assert conn.execute("SELECT agent_ssn FROM reg_cards WHERE card_no = ?", (proxy,)) == [
            (AGENT,)
        ]


def test_impossible_dates_of_notification_receipt_and_collection(
    db_url: str, tmp_path: Path
) -> None:
    import datetime

    rows = _accounts_opened(db_url, tmp_path, 2)
    db = ["--db", db_url]
    future = (datetime.date.today() + datetime.timedelta(days=3)).isoformat()
    err = run_cli("registry", "notify", "--date", future, *db, code=1)
    assert f"field 'date': {future} is in the future" in err
    run_cli("registry", "notify", "--date", "2026-02-02", *db)
    run_cli("registry", "box", "pack", "--service-point", "SP01", "--manifest",
            str(tmp_path / "m.csv"), "--box", "BOX1", *db)  # fmt: skip
    err = run_cli("registry", "box", "receive", "BOX1", "--by", "x", "--date", future, *db, code=1)
    assert "record box BOX1, field 'date'" in err and "is in the future" in err
    run_cli("registry", "box", "receive", "BOX1", "--by", "x", "--date", "2026-02-05", *db)
    no = rows[0]["card_no"]
    err = run_cli("registry", "issue", no, "--date", "2026-02-04", *db, code=1)
    assert f"record card {no}, field 'date': 20260204 is before its box BOX1 reached" in err
    run_cli("registry", "issue", no, "--date", "2026-02-05", *db)


_PACKER = r"""
import sys, time
from pathlib import Path
from cardperso.cli.main import main
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.005)
sys.argv = ["cardperso", "registry", "box", "pack", "--service-point", "SP01", "--manifest",
            sys.argv[2], "--db", sys.argv[3]]
main()
"""


def test_two_packs_at_once_never_box_a_card_twice(db_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    rows = _accounts_opened(db_url, tmp_path, 3)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PACKER, str(go), str(tmp_path / f"m{i}.csv"), db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    go.touch()
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    (err,) = [e for code, _, e in results if code == 2]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "waits for a box" in err or "packed for SP01 at the same time" in err
    with connect(db_url) as conn:
        boxed = conn.execute("SELECT card_no, box_no FROM reg_box_cards")
    assert sorted(n for n, _ in boxed) == sorted(r["card_no"] for r in rows)
    assert len({b for _, b in boxed}) == 1
