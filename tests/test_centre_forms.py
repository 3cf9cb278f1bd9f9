# ruff: noqa: F811 - pytest fixtures imported from test_registry are parameters here
"""Issue 15, the acceptance forms as PDF: the application registration form and the
card-issuing confirmation form, with the applicant's data and photo, Chinese in the card
faces' CJK font; checked by rendering them (pdftoppm), listing their images (pdfimages) and
reading their text (pdftotext). SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image, ImageStat

from cardperso.codec.numbers import NATIONS, mask_id
from test_centre_acceptance import GOOD, setup_lists, write_centre_apps
from test_integrity_registry import _applications
from test_registry import (  # the registry tests' fixtures and helpers
    db_url,  # noqa: F401 - fixture
    pg_url,  # noqa: F401 - fixture
    run_cli,
)


def _text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def _render(pdf: Path, tmp_path: Path) -> Image.Image:
    stem = tmp_path / pdf.stem
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-singlefile", str(pdf), str(stem)], check=True)
    return Image.open(f"{stem}.png").convert("L")


def test_the_registration_and_issuing_forms(db_url: str, tmp_path: Path) -> None:
    recs = _applications(tmp_path, 2)
    setup_lists(db_url, sorted({r["bank_code"] for r in recs}))
    extra = [GOOD, dict(GOOD, photo_source="id_card", photo_receipt="", applicant_confirmed="")]
    db = ["--db", db_url]
    run_cli("registry", "import", str(write_centre_apps(tmp_path, recs, extra)), *db)
    form = tmp_path / "app1.pdf"
    out = run_cli("registry", "form", "application", "1", "--out", str(form), *db)
    assert "application 1: registration form" in out
    assert oct(form.stat().st_mode & 0o777) == "0o600", "personal data"
    text = _text(form)
    for expected in (
        "社会保障卡申领登记表", recs[0]["name"], recs[0]["ssn"], "深圳市甲科技有限公司（U1001）",
        "南山街道社保服务点（SP01）", f"合作银行{recs[0]['bank_code']}", "13812345678",
        "照相馆采集，回执号 PS2026-0001", "经办人员确认：王工号0012", "申领人确认：已签字",
        "批量（单位）申领" if recs[0]["application_type"] == "batch" else "零星（个人）申领",
        # the ethnic group by its GB/T 3304 name, with the code (01 汉族 ... 56 基诺族)
        f"{NATIONS[recs[0]['nation']]}（{recs[0]['nation']}）",
    ):  # fmt: skip
        assert expected in text, expected
    images = subprocess.run(["pdfimages", "-list", str(form)], capture_output=True, text=True,
                            check=True).stdout.splitlines()[2:]  # fmt: skip
    assert [(i.split()[3], i.split()[4]) for i in images] == [("358", "441")], "the photo"
    page = _render(form, tmp_path)
    w, h = page.size  # A4 at 50 dpi; the photo frame is at the top right (166-196 x 26-63 mm)
    box = (int(w * 168 / 210), int(h * 28 / 297), int(w * 194 / 210), int(h * 60 / 297))
    assert ImageStat.Stat(page.crop(box)).stddev[0] > 10, "the photo is drawn, not blank"
    run_cli("registry", "form", "application", "2", "--out", str(tmp_path / "app2.pdf"), *db)
    text2 = _text(tmp_path / "app2.pdf")
    assert "授权使用居民身份证照片" in text2 and "申领人确认：（未签字）" in text2
    # the issuing confirmation form: the bank to confirm, the masked number, no full one
    issuing = tmp_path / "issuing1.pdf"
    run_cli("registry", "form", "issuing", "1", "--out", str(issuing), *db)
    text = _text(issuing)
    assert "社会保障卡发卡服务确认单" in text and recs[0]["name"] in text
    assert mask_id(recs[0]["ssn"]) in text and recs[0]["ssn"] not in text
    assert f"本人确认选择合作银行{recs[0]['bank_code']}" in text and "（登记后分配）" in text
    err = run_cli("registry", "form", "issuing", "99", "--out", str(issuing), *db, code=2)
    assert "no application 99 in the registry" in err
