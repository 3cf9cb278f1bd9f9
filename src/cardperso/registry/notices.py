"""Telling people their card is ready, through pluggable channels, and recording each message.

A :class:`Channel` delivers :class:`Message` s and says, per message, whether it went out. The
registry ships three:

* :class:`SmsFile`: a CSV for the SMS gateway's batch upload (``phone, message, card_no``);
* :class:`Letters`: printed letters, one page per cardholder and one per insured unit listing
  its employees' cards (plain text pages separated by form feeds, for any printer);
* :class:`GatewayChannel`: any :class:`Gateway` (an e-mail or SMS gateway's API) behind one
  method, ``send(address, text) -> reference``; the centre plugs its gateway's client in. (The
  tests use a fake gateway: an SMS gateway cannot run in a test.)

:func:`deliver` sends the notices of cards just made ready through every channel given and
records each message in ``reg_notifications`` (application, card, channel, recipient, sent or
failed and why). An SMS carries neither name nor identity number: only the card number and
where to collect it.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cardperso.outputs import atomic_output
from cardperso.registry.centre import mask_phone, parties
from cardperso.storage.db import Database


@dataclass(frozen=True, slots=True)
class Message:
    """One notice to one recipient: the holder (phone, name) or an insured unit."""

    app_id: int
    card_no: str
    recipient: str  # "holder" or "unit UNIT"
    address: str = field(repr=False)  # phone, or the unit's code
    name: str = field(repr=False)  # holder's name (letters only)
    text: str


@dataclass(frozen=True, slots=True)
class Delivery:
    ok: bool
    detail: str = ""


class Channel(Protocol):
    name: str
    units: bool  # whether it also carries the letters to insured units

    def send(self, messages: Sequence[Message]) -> list[Delivery]: ...


class Gateway(Protocol):
    """An e-mail or SMS gateway: ``send`` returns the gateway's reference or raises."""

    def send(self, address: str, text: str) -> str: ...


@dataclass
class GatewayChannel:
    gateway: Gateway
    name: str = "gateway"
    units: bool = False

    def send(self, messages: Sequence[Message]) -> list[Delivery]:
        out = []
        for m in messages:
            if not m.address:
                out.append(Delivery(False, "no address"))
                continue
            try:
                ref = self.gateway.send(m.address, m.text)
            except Exception as exc:  # the gateway's own errors: recorded, never fatal
                out.append(Delivery(False, f"gateway refused: {type(exc).__name__}"))
                continue
            out.append(Delivery(True, f"reference {ref}"))
        return out


@dataclass
class SmsFile:
    """The SMS gateway's upload file (mode 0600: it carries phone numbers)."""

    path: Path
    name: str = "sms-file"
    units: bool = False

    def send(self, messages: Sequence[Message]) -> list[Delivery]:
        out = []
        with atomic_output(self.path) as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(("phone", "message", "card_no"))
            for m in messages:
                if not m.address:
                    out.append(Delivery(False, "no phone"))
                    continue
                writer.writerow((m.address, m.text, m.card_no))
                out.append(Delivery(True, f"{self.path.name}: {mask_phone(m.address)}"))
        return out


@dataclass
class Letters:
    """Letters to print: text pages separated by form feeds (mode 0600: names)."""

    path: Path
    name: str = "letter"
    units: bool = True

    def send(self, messages: Sequence[Message]) -> list[Delivery]:
        pages = []
        for m in messages:
            greeting = f"{m.name}：" if m.recipient == "holder" else f"{m.name}（{m.address}）："
            pages.append(f"{greeting}\n\n{m.text}\n\n社会保障卡服务中心\n")
        with atomic_output(self.path) as fh:
            fh.write("\f".join(pages))
        return [Delivery(True, self.path.name) for _ in messages]


def holder_text(card_no: str, point_name: str) -> str:
    where = f"到{point_name}" if point_name else "到受理网点"
    return f"您的社会保障卡（卡号{card_no}）已制作完成，请携带身份证{where}领取。"


def messages_for(db: Database, app_ids: Sequence[int], *, units: bool) -> list[Message]:
    """The holders' messages of ``app_ids`` (and, ``units``, one per insured unit per card)."""
    if not app_ids:
        return []
    points = parties(db, "service_point")
    unit_names = parties(db, "unit")
    marks = ", ".join("?" for _ in app_ids)
    out = []
    for app_id, card_no, name, phone, point, unit in db.execute(
        "SELECT id, card_no, name, phone, service_point, unit FROM reg_applications "
        f"WHERE id IN ({marks}) ORDER BY id",
        tuple(app_ids),
    ):
        p = points.get(str(point or ""))
        text = holder_text(str(card_no), p.name if p else "")
        out.append(Message(int(app_id), str(card_no), "holder", str(phone or ""), str(name), text))
        if units and unit:
            u = unit_names.get(str(unit))
            out.append(
                Message(
                    int(app_id),
                    str(card_no),
                    f"unit {unit}",
                    str(unit),
                    u.name if u else str(unit),
                    f"贵单位职工{name}的社会保障卡（卡号{card_no}）已制作完成，请通知本人领取。",
                )
            )
    return out


def deliver(
    db: Database, messages: Sequence[Message], channels: Sequence[Channel]
) -> dict[str, int]:
    """Send through every channel and record each message; {channel: messages sent}."""
    sent: dict[str, int] = {}
    for channel in channels:
        mine = [m for m in messages if channel.units or m.recipient == "holder"]
        got = channel.send(mine)
        now = time.time()
        db.executemany(
            "INSERT INTO reg_notifications (application_id, card_no, channel, recipient, status, "
            "detail, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (m.app_id, m.card_no, channel.name, m.recipient, "sent" if d.ok else "failed",
                 d.detail, now)
                for m, d in zip(mine, got, strict=True)
            ],
        )  # fmt: skip
        sent[channel.name] = sum(d.ok for d in got)
    return sent


def notifications(db: Database, card_no: str) -> list[dict[str, str]]:
    """The messages recorded for ``card_no`` (for ``registry show``)."""
    return [
        {"channel": str(c), "recipient": str(r), "status": str(s), "detail": str(d or "")}
        for c, r, s, d in db.execute(
            "SELECT channel, recipient, status, detail FROM reg_notifications WHERE card_no = ? "
            "ORDER BY id",
            (card_no,),
        )
    ]
