"""The PBOC application's personalization (STORE DATA DGIs, docs/card-dgi-map.md) and the small
codecs the application and its personalizer share (n12 amounts, DOLs, TLV parsing that answers
6A80 instead of raising)."""

from __future__ import annotations

from cardperso.card import pboc_oda
from cardperso.card.applet import (
    SW_REF_NOT_FOUND,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    Sw,
    need,
)
from cardperso.card.perso import Personalizer, plaintext
from cardperso.card.state import CardState, PbocData
from cardperso.codec import tlv
from cardperso.crypto import primitives as cp
from cardperso.errors import DecodeError
from cardperso.layouts import pboc_ac

#: EC data objects changed by issuer scripts (n12) and the PbocData field holding each.
EC_FIELDS = {
    0x9F79: "ec_balance",
    0x9F77: "ec_balance_limit",
    0x9F78: "ec_single_limit",
    0x9F6D: "ec_reset_threshold",
}


def n12(value: int) -> bytes:
    return bytes.fromhex(f"{value:012d}")


def decode_n(data: bytes) -> int:
    text = data.hex()
    need(text.isdigit(), SW_WRONG_DATA)
    return int(text) if text else 0


def parse_tlvs(data: bytes) -> list[tlv.Tlv]:
    try:
        return tlv.parse(data)
    except DecodeError:
        raise Sw(SW_WRONG_DATA) from None


def parse_dol(dol: bytes) -> list[tuple[int, int]]:
    """A data object list: ``(tag, length)`` pairs."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < len(dol):
        tag = dol[pos]
        pos += 1
        if tag & 0x1F == 0x1F:
            while pos < len(dol) and dol[pos] & 0x80:
                tag = tag << 8 | dol[pos]
                pos += 1
            need(pos < len(dol), SW_WRONG_DATA)
            tag = tag << 8 | dol[pos]
            pos += 1
        need(pos < len(dol), SW_WRONG_DATA)
        out.append((tag, dol[pos]))
        pos += 1
    return out


def dol_values(dol: list[tuple[int, int]], data: bytes) -> dict[int, bytes]:
    need(sum(n for _, n in dol) == len(data), SW_WRONG_LENGTH)
    out: dict[int, bytes] = {}
    pos = 0
    for tag, n in dol:
        out[tag] = data[pos : pos + n]
        pos += n
    return out


def check_ec_consistency(d: PbocData) -> None:
    """balance, single limit and reset threshold all <= balance limit (pboc-financial.md)."""
    need(
        d.ec_balance <= d.ec_balance_limit
        and d.ec_single_limit <= d.ec_balance_limit
        and d.ec_reset_threshold <= d.ec_balance_limit,
        SW_WRONG_DATA,
    )


def check_iad(value: bytes) -> None:
    """A 9F10 in PBOC's layout (starting 07) must be whole - a length byte never promises
    missing bytes - and name 3DES (the card makes no SM4 cryptogram): else 6A80."""
    if value[:1] == b"\x07":
        try:
            iad = pboc_ac.IAD.decode(value)
        except DecodeError:
            raise Sw(SW_WRONG_DATA) from None
        need(iad.algorithm == pboc_ac.ALGORITHM_3DES, SW_WRONG_DATA)


def records(d: PbocData) -> dict[str, bytes]:
    """The record DGIs (SFI 1-10 ‖ record) READ RECORD answers."""
    return {k: v for k, v in d.dgis.items() if 0x01 <= int(k[:2], 16) <= 0x0A}


def internal_value(d: PbocData, tag: int) -> bytes | None:
    """A data object of the card's internal data (0D01, then 0E01)."""
    for key in ("0D01", "0E01"):
        raw = d.dgis.get(key)
        if raw:
            found = tlv.find(parse_tlvs(raw), tag)
            if found is not None:
                return found.value
    return None


def lookup(d: PbocData, tag: int) -> bytes | None:
    """A data object of the internal data, else of the records (first found)."""
    value = internal_value(d, tag)
    if value is None:
        for record in records(d).values():
            found = tlv.find(parse_tlvs(record), tag)
            if found is not None:
                return found.value
    return value


class PbocPersonalizer(Personalizer):
    def __init__(self, nv: CardState) -> None:
        self.nv = nv

    def store(self, dgi: int, value: bytes, encrypted: bool) -> None:
        d = self.nv.pboc
        hi, lo = dgi >> 8, dgi & 0xFF
        key = f"{dgi:04X}"
        if 0x01 <= hi <= 0x0A and lo >= 1:
            need(not encrypted and value[:1] == b"\x70", SW_WRONG_DATA)
            try:
                tlv.parse_one(value)
            except DecodeError:
                raise Sw(SW_WRONG_DATA) from None
            d.dgis[key] = value
        elif dgi in (0x0D01, 0x0E01):
            need(not encrypted, SW_WRONG_DATA)
            items = parse_tlvs(value)
            if len(items) == 1 and items[0].tag == 0x70:
                value = items[0].value
            values = tlv.to_dict(parse_tlvs(value)) if value else {}
            for tag, name in EC_FIELDS.items():
                if tag in values:
                    need(len(values[tag]) == 6, SW_WRONG_DATA)
                    setattr(d, name, decode_n(values[tag]))
            if 0x9F36 in values:
                need(len(values[0x9F36]) == 2, SW_WRONG_DATA)
                d.atc = int.from_bytes(values[0x9F36], "big")
            if 0x9F13 in values:
                need(len(values[0x9F13]) == 2, SW_WRONG_DATA)
                d.last_online_atc = int.from_bytes(values[0x9F13], "big")
            d.dgis[key] = value
        elif dgi in (0x9102, 0x9103, 0x9104, 0x9203, 0x9207):
            need(not encrypted, SW_WRONG_DATA)
            objects = tlv.to_dict(parse_tlvs(value))
            if dgi == 0x9207:  # qPBOC: an AIP, and a 9F10 as whole as 9200's
                need(len(objects.get(0x82, b"")) == 2, SW_WRONG_DATA)
                check_iad(objects.get(0x9F10, b""))
            d.dgis[key] = value
        elif dgi == 0x9200:
            need(not encrypted, SW_WRONG_DATA)
            if value[:2] == b"\x9f\x10":
                item = tlv.find(parse_tlvs(value), 0x9F10)
                need(item is not None, SW_WRONG_DATA)
                assert item is not None
                value = item.value
            check_iad(value)
            d.dgis[key] = value
        elif dgi == 0x8000:
            keys = plaintext(value, 48, encrypted)
            d.ac_key, d.smi_key, d.smc_key = keys[:16], keys[16:32], keys[32:]
            self._check_kcvs()
        elif dgi == 0x9000:
            need(len(value) == 9 and not encrypted, SW_WRONG_DATA)
            d.dgis[key] = value
            self._check_kcvs()
        elif dgi == 0x8010:
            block = plaintext(value, 8, encrypted)
            from cardperso.card.ssse import decode_pin_block

            decode_pin_block(block)
            d.pin_block = block
            if not d.pin_try_limit:
                d.pin_try_limit = d.pin_tries_left = 3
        elif dgi == 0x9010:
            need(len(value) == 2 and not encrypted, SW_WRONG_DATA)
            need(1 <= value[0] <= 15 and value[1] <= value[0], SW_WRONG_DATA)
            d.pin_try_limit, d.pin_tries_left = value[0], value[1]
        elif 0x8201 <= dgi <= 0x8205:
            pboc_oda.store_part(d, dgi, value, encrypted)
        elif dgi in (0x8020, 0x8030):
            need(encrypted, SW_WRONG_DATA)
            d.dgis[key] = value
        elif dgi in (0x9020, 0x9030):
            d.dgis[key] = value
        else:
            raise Sw(SW_REF_NOT_FOUND)

    def _check_kcvs(self) -> None:
        d = self.nv.pboc
        kcvs = d.dgis.get("9000")
        if kcvs is None or not d.ac_key:
            return
        expected = b"".join(cp.kcv("3DES", k) for k in (d.ac_key, d.smi_key, d.smc_key))
        need(cp.equal(expected, kcvs), SW_WRONG_DATA)

    def finish(self) -> None:
        d = self.nv.pboc
        check_ec_consistency(d)
        pboc_oda.icc_key(d, lambda tag: lookup(d, tag))  # the five parts make one key, or 6A80
