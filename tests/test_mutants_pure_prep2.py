"""What the mutation run of 4 December 2026 (late evening) over the rewritten cardperso.prep
found unasserted (issue 18): card numbers of 16 digits kept apart by the duplicate check, the
size a verified perso file reports, and a JSON Lines rejects file written as UTF-8 text."""

from __future__ import annotations

import json
from pathlib import Path

from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.container import verify
from cardperso.prep.dedup import pan_fp
from cardperso.prep.rejects import RejectsWriter
from test_mutants_pure import _prep


def test_pan_fingerprints_keep_lengths_and_numbers_apart() -> None:
    # the PAN without its Luhn digit, and its length (16 to 19): distinct PANs never meet
    pans = ["6212345678901234", "6212345678901242", "62123456789012345", "621234567890123456"]
    fps = [pan_fp(p) for p in pans]
    assert len(set(fps)) == len(fps)
    assert all(fp > 0 for fp in fps)  # 0 means "no PAN" to the duplicate check
    # same digits before the check digit, other lengths: still apart
    assert pan_fp("6212345678901234") != pan_fp("62123456789012340")


def test_verify_reports_the_whole_file_size(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    out = _prep(tmp_path, sample_keystore, "a", seed=3)
    result = verify(out, sample_keystore)
    assert result.records == 6
    assert result.size == out.stat().st_size


def test_jsonl_rejects_are_utf8_text(tmp_path: Path) -> None:
    reason = "contains a character outside GB 18030: 𠀀"
    for name in ("r.jsonl", "r.csv"):
        w = RejectsWriter(tmp_path / name)
        w.add(3, "name", reason, "110101********1234", 4)
        w.close()
    text = (tmp_path / "r.jsonl").read_text(encoding="utf-8")
    assert reason in text  # the characters themselves, not \\u escapes
    assert json.loads(text) == {
        "line": 3,
        "field": "name",
        "reason": reason,
        "ssn_masked": "110101********1234",
        "end_line": 4,
    }
    assert reason in (tmp_path / "r.csv").read_text(encoding="utf-8")
