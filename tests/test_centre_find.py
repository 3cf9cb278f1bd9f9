# ruff: noqa: F811 - pytest fixtures imported from test_registry are parameters here
"""Issue 15, finding things: ``registry show`` (an application or a card, with its history,
photo path, the person's cards and the bank's requests), ``registry list`` with filters, JSON
output for both, and the ids that later commands need. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cardperso.codec.numbers import mask_id
from cardperso.storage.db import connect
from test_centre_fixes import _issued, _personalized
from test_integrity_registry import _applications
from test_registry import (  # the registry tests' fixtures and helpers
    db_url,  # noqa: F401 - fixture
    pg_url,  # noqa: F401 - fixture
    run_cli,
)


def test_import_prints_the_ids_that_audit_reject_takes(db_url: str, tmp_path: Path) -> None:
    _applications(tmp_path, 4)
    url = ["--db", db_url]
    run_cli("db", "upgrade", *url)
    out = run_cli("registry", "import", str(tmp_path / "apps.csv"), *url)
    assert "read 4, accepted 4, rejected 0 (application ids 1-4)" in out
    assert "application 3: rejected" in run_cli(
        "registry", "audit", *url, "--reject", "3", "--reason", "photo is not the applicant"
    )
    assert "audited 3, rejected 0" in run_cli("registry", "audit", *url)
    run_cli("registry", "compare", *url, "--population", str(tmp_path / "population.csv"),
            "--bank", str(tmp_path / "bank.csv"))  # fmt: skip
    out = run_cli("registry", "register", *url)
    numbers = re.findall(r"application (\d+) \S+: card (\w{9})", out)
    assert [int(i) for i, _ in numbers] == [1, 2, 4]
    for app_id, card in numbers:  # the card number named is the one show finds
        assert json.loads(run_cli("registry", "show", card, "--json", *url))[
            "application_id"
        ] == int(app_id)


def test_show_a_card_and_an_application_as_text_and_json(db_url: str, tmp_path: Path) -> None:
    rows = _issued(db_url, tmp_path, 2)
    url = ["--db", db_url]
    no = rows[0]["card_no"]
    run_cli("registry", "suspend", no, *url)
    text = run_cli("registry", "show", no, *url)
    assert "state:             suspended" in text
    assert f"ssn_masked:        {mask_id(rows[0]['ssn'])}" in text
    assert f"photo:             {rows[0]['photo']}" in text
    assert "history:" in text and "suspend" in text.split("history:")[1]
    assert "  bank_requests:\n    id 1  request block  reason suspended: reported lost" in text
    assert "  box:" not in text and "{" not in text, "nested values read as text, not reprs"
    for secret in (rows[0]["ssn"], rows[0]["name"], rows[0]["pan"]):
        assert secret not in text, "personal data is masked"
    got = json.loads(run_cli("registry", "show", no, "--json", *url))
    by_id = json.loads(run_cli("registry", "show", str(got["application_id"]), "--json", *url))
    assert got == by_id
    assert got["card_no"] == no and got["card"]["batch_no"] == "B1"
    assert (
        got["card"]["pan"]
        == rows[0]["pan"][:6] + "*" * (len(rows[0]["pan"]) - 10) + rows[0]["pan"][-4:]
    )
    assert got["card"]["bank_requests"][0]["request"] == "block"
    assert [h["event"] for h in got["history"]] == [
        "accept", "audit", "compare_ok", "register", "export", "produced", "account_open",
        "notify", "issue", "suspend",
    ]  # fmt: skip
    err = run_cli("registry", "show", "ZZZZZZZZZ", *url, code=2)
    assert "no card ZZZZZZZZZ in the registry" in err
    err = run_cli("registry", "show", "999", *url, code=2)
    assert "no application 999 in the registry" in err


def test_list_with_filters_and_json_lines(db_url: str, tmp_path: Path) -> None:
    rows = _personalized(db_url, tmp_path, 5)
    url = ["--db", db_url]
    with connect(db_url) as db:  # vary what the filters select on
        db.execute("UPDATE reg_applications SET accepted_date = '20260110' WHERE id <= 2")
        db.execute("UPDATE reg_applications SET accepted_date = '20260120' WHERE id > 2")
        db.execute("UPDATE reg_applications SET application_type = 'batch'")
        db.execute("UPDATE reg_applications SET application_type = 'sporadic' WHERE id = 5")
        db.execute("UPDATE reg_applications SET bank_code = '999' WHERE id = 4")
    everything = run_cli("registry", "list", *url)
    assert "5 application(s)" in everything
    assert all(r["ssn"] not in everything for r in rows)
    lines = run_cli("registry", "list", "--json", *url).splitlines()
    assert [json.loads(x)["application_id"] for x in lines] == [1, 2, 3, 4, 5]
    assert json.loads(lines[0])["ssn_masked"] == mask_id(rows[0]["ssn"])

    def ids(*args: str) -> list[int]:
        out = run_cli("registry", "list", "--json", *args, *url)
        return [json.loads(x)["application_id"] for x in out.splitlines()]

    assert ids("--from", "2026-01-15") == [3, 4, 5]
    assert ids("--to", "2026-01-10") == [1, 2]
    assert ids("--type", "sporadic") == [5]
    assert ids("--bank", "999") == [4]
    assert ids("--batch", "B1", "--limit", "2") == [1, 2]
    assert ids("--batch", "B2") == []
    assert ids("--state", "personalized", "--state", "cancelled") == [1, 2, 3, 4, 5]
    assert ids("--region", rows[0]["region"])[0] == 1
    assert ids("--ssn", rows[3]["ssn"].lower()) == [4]  # a person, by identity number
    err = run_cli("registry", "show", rows[3]["ssn"], *url, code=2)
    assert rows[3]["ssn"] not in err and mask_id(rows[3]["ssn"]) in err
    err = run_cli("registry", "list", "--state", "lost", *url, code=2)
    assert "--state lost: not a state" in err
    err = run_cli("registry", "list", "--from", "2026-02-01", "--to", "2026-01-01", *url, code=2)
    assert "--to 2026-01-01 is before --from 2026-02-01" in err
