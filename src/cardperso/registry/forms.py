"""The two forms of the seeds' acceptance, as PDF: the application registration form
(社会保障卡申领登记表) and the card-issuing service confirmation form (社会保障卡发卡服务确认单).

The service point prints the confirmation form, on which the applicant confirms the card's
issuing bank, and the registration form, which the applicant checks and both parties sign.
Each carries the applicant's data and photo (or the note that the ID-card photo is used, or
the studio's receipt number). Chinese is set in the CJK font of the card faces
(:func:`cardperso.devices.cardface.find_font`: WenQuanYi Micro Hei from Debian's
fonts-wqy-microhei), embedded as a subset by fpdf2 with its Unicode map, so the text can be
searched and extracted (``pdftotext``). The PDF holds personal data: written atomically, mode
0600.
"""

from __future__ import annotations

import datetime
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fpdf import FPDF

from cardperso.codec.numbers import NATIONS, mask_id
from cardperso.devices.cardface import find_font
from cardperso.errors import UsageError
from cardperso.outputs import atomic_write_bytes
from cardperso.prep.validate import read_photo
from cardperso.registry.centre import parties
from cardperso.registry.find import resolve
from cardperso.storage.db import Database

log = logging.getLogger("cardperso.registry")

GENDER: Final = {"1": "男", "2": "女", "0": "未知", "9": "未说明"}
PHOTO_SOURCE: Final = {"id_card": "授权使用居民身份证照片", "studio": "照相馆采集"}
KINDS: Final = {"batch": "批量（单位）申领", "sporadic": "零星（个人）申领"}


@dataclass(frozen=True, slots=True)
class FormData:
    """What a form shows: the application as stored, the centre's names for its codes."""

    app_id: int
    name: str
    ssn: str
    gender: str
    nation: str
    birth_date: str
    region: str
    phone: str
    unit: str
    service_point: str
    bank: str
    application_type: str
    accepted_date: str
    card_no: str
    photo: str
    photo_source: str
    photo_receipt: str
    staff_confirmed: str
    applicant_confirmed: str


def _day(text: str) -> str:
    return f"{text[:4]}年{text[4:6]}月{text[6:]}日" if len(text) == 8 else text


def form_data(db: Database, key: str) -> FormData:
    """The application named by ``key`` (id or card number) with its names resolved."""
    app = resolve(db, key)
    row = db.execute(
        "SELECT phone, unit, service_point, photo_source, photo_receipt, staff_confirmed, "
        "applicant_confirmed FROM reg_applications WHERE id = ?",
        (app.id,),
    )[0]
    phone, unit, point, source, receipt, staff, applicant = (
        "" if v is None else str(v) for v in row
    )
    units, points, banks = (parties(db, k) for k in ("unit", "service_point", "bank"))

    def named(code: str, table: dict[str, object]) -> str:
        party = table.get(code)
        return f"{getattr(party, 'name', '')}（{code}）" if party else code

    return FormData(
        app.id, app.name, app.ssn, GENDER.get(app.gender, app.gender),
        f"{NATIONS[app.nation]}（{app.nation}）" if app.nation in NATIONS else app.nation,
        app.birth_date, app.region, phone, named(unit, dict(units)), named(point, dict(points)),
        named(app.bank_code, dict(banks)), KINDS.get(app.application_type, app.application_type),
        app.accepted_date, app.card_no, app.photo, source, receipt, staff, applicant,
    )  # fmt: skip


class _Form(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        font = find_font()
        self.add_font("cjk", fname=font, collection_font_number=0)  # the first font of a .ttc
        self.set_auto_page_break(False)
        self.add_page()
        self.set_font("cjk", size=18)
        self.cell(0, 14, title, align="C", new_x="LMARGIN", new_y="NEXT")
        self.set_font("cjk", size=11)

    def row(self, label: str, value: str, width: float = 120) -> None:
        self.cell(36, 9, label, border=1)
        self.cell(width, 9, value, border=1, new_x="LMARGIN", new_y="NEXT")


def _photo(pdf: _Form, data: FormData) -> str:
    """Put the photo at the top right; what the form says about it."""
    x, y, w, h = 166, 26, 30, 37  # 26 x 32 mm is the card photo; a little larger on paper
    note = PHOTO_SOURCE.get(data.photo_source, "")
    if data.photo_receipt:
        note += f"，回执号 {data.photo_receipt}"
    got = read_photo(data.photo) if data.photo else "no photo"
    if isinstance(got, bytes):
        try:
            pdf.image(io.BytesIO(got), x=x, y=y, w=w, h=h)
            return note or "照片已采集"
        except Exception as exc:  # not an image fpdf2 can place: an empty frame, the form says so
            log.warning("application %d: photo not placed (%s)", data.app_id, type(exc).__name__)
    pdf.rect(x, y, w, h)
    pdf.set_xy(x, y + h / 2 - 4)
    pdf.cell(w, 8, "照片", align="C")
    pdf.set_xy(pdf.l_margin, 26)
    return note or "未附照片"


def application_form(db: Database, key: str, out: Path) -> FormData:
    """社会保障卡申领登记表: the applicant's data, photo and both confirmations."""
    data = form_data(db, key)
    pdf = _Form("社会保障卡申领登记表")
    pdf.set_xy(pdf.l_margin, 26)
    photo_note = _photo(pdf, data)
    pdf.set_xy(pdf.l_margin, 26)
    for label, value in (
        ("申请编号", str(data.app_id)),
        ("姓名", data.name),
        ("性别", data.gender),
        ("民族", data.nation),
        ("出生日期", _day(data.birth_date)),
        ("社会保障号码", data.ssn),
        ("行政区划", data.region),
        ("联系电话", data.phone),
        ("参保单位", data.unit or "个人申领"),
        ("申领类型", data.application_type),
        ("受理网点", data.service_point),
        ("受理日期", _day(data.accepted_date)),
        ("发卡银行", data.bank),
        ("照片来源", photo_note),
    ):
        pdf.row(label, value)
    pdf.ln(6)
    pdf.multi_cell(
        0, 7,
        "本人承诺以上信息真实、准确，并已核对无误。经办人员已核验本人身份证原件及复印件。",
    )  # fmt: skip
    pdf.ln(4)
    staff = f"经办人员确认：{data.staff_confirmed or '（未签字）'}"
    applicant = "申领人确认：" + ("已签字" if data.applicant_confirmed else "（未签字）")
    pdf.cell(90, 9, staff, border=1)
    pdf.cell(90, 9, applicant, border=1, new_x="LMARGIN", new_y="NEXT")
    _footer(pdf)
    atomic_write_bytes(Path(out), bytes(pdf.output()))
    return data


def issuing_form(db: Database, key: str, out: Path) -> FormData:
    """社会保障卡发卡服务确认单: the applicant confirms the issuing bank (and sees the card
    number once the card is registered)."""
    data = form_data(db, key)
    if not data.bank:
        raise UsageError(f"application {data.app_id} has no issuing bank to confirm")
    pdf = _Form("社会保障卡发卡服务确认单")
    pdf.set_xy(pdf.l_margin, 26)
    _photo(pdf, data)
    pdf.set_xy(pdf.l_margin, 26)
    for label, value in (
        ("申请编号", str(data.app_id)),
        ("姓名", data.name),
        ("社会保障号码", mask_id(data.ssn)),
        ("受理网点", data.service_point),
        ("社会保障卡号", data.card_no or "（登记后分配）"),
        ("发卡银行", data.bank),
    ):
        pdf.row(label, value)
    pdf.ln(6)
    pdf.multi_cell(
        0, 7,
        f"本人确认选择{data.bank}作为社会保障卡发卡银行，同意开通社会保障卡金融功能，"
        "并授权该银行开立与社会保障卡关联的银行账户。",
    )  # fmt: skip
    pdf.ln(4)
    pdf.cell(90, 9, "申领人签字：", border=1)
    pdf.cell(90, 9, "日期：", border=1, new_x="LMARGIN", new_y="NEXT")
    _footer(pdf)
    atomic_write_bytes(Path(out), bytes(pdf.output()))
    return data


def _footer(pdf: _Form) -> None:
    pdf.set_y(-20)
    pdf.set_font("cjk", size=8)
    pdf.cell(0, 6, f"cardperso · 打印于 {datetime.date.today():%Y-%m-%d}", align="C")
