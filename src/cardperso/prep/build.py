"""Chip data of a whole chunk at once: profile templates compiled to segments.

How this works
--------------
A profile is compiled **once** (:class:`ChunkBuilder`) into lists of *segments*
(:mod:`cardperso.codec.columns`): bytes that are the same on every card, and per-card columns
that fill the slots between them. The SSSE records come from the record construct of
:mod:`cardperso.layouts.ssse` (:func:`~cardperso.layouts.ssse.record_template`): a constant
record is built with its value, a per-card record with a zero value whose value bytes (offset 2)
are the slot. Per chunk, each slot is encoded for all cards at once (BCD and ASCII matrices from
:class:`~cardperso.prep.cards.Cards`, the wrapped keys from :mod:`cardperso.prep.keys`), and
:func:`~cardperso.codec.columns.assemble` lays out every card's record content in one pass. The
few variable-length values (PAN-dependent DGIs 0101/0301, 0302 with the names, the card face
and the tracks) are per-card strings joined and encoded in one call each.

The content is the sealed part of a personalization-file record
(:data:`cardperso.layouts.persofile.RECORD_CONTENT`): identity number, PAN, card
identification code, the applications with their DGIs (``docs/card-dgi-map.md``), face, tracks.

Extra DGIs per card (e.g. offline data authentication, issue 13) plug in as a per-profile stage
(:attr:`ChunkBuilder.extra_pboc`): a function of the chunk returning one ``Var`` of DGIs per
card, appended to the PBOC application's DGIs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from cardperso.codec import fields, magstripe
from cardperso.codec.columns import (
    U8,
    Segment,
    Var,
    assemble,
    bcd,
    be_uint,
    fixed_text,
    hex_pack,
    segment_lengths,
    text_var,
    var_of,
)
from cardperso.codec.dgi import encode_dgi
from cardperso.codec.tlv import encode as tlv_encode
from cardperso.errors import DataError, ProfileError
from cardperso.layouts.ssse import record_template
from cardperso.prep.cards import Cards, RejectRow
from cardperso.prep.keys import ChunkKeyData
from cardperso.profiles.model import ConstantDgi, Profile, RecordSpec

if TYPE_CHECKING:
    from cardperso.prep.oda import OdaChunk

__all__ = ["SSSE_PIN_DGI", "Built", "ChunkBuilder", "dgi_header", "ssse_key_dgi"]

#: Lengths of input fields after validation (fixed-length fields only).
_KNOWN_LEN = {
    "ssn": 18,
    "card_no": 9,
    "gender": 1,
    "person_code": 12,
    "nation": 2,
    "region": 6,
    "birth_place": 6,
    "birth_date": 8,
    "issue_date": 8,
    "expiry_date": 8,
    "accepted_date": 8,
    "pan_seq": 2,
}
_DIGIT_FIELDS = {"nation", "region", "birth_place", "birth_date", "issue_date", "expiry_date"}
_DIGIT_FIELDS |= {"accepted_date", "pan_seq"}

#: DGI of the SSSE PIN block and of the PIN try limit / counter (docs/card-dgi-map.md).
SSSE_PIN_DGI = 0x8F10
SSSE_PIN_TRY_DGI = 0x9F10
SSSE_ALG_DGI = 0x9F0C

#: A per-profile stage of extra PBOC DGIs: the chunk's cards and their PBOC DGIs so far -> the
#: DGIs to append, per card (offline data authentication: :func:`oda_stage`).
ExtraDgis = Callable[["Cards", Var], Var]

#: A slot's encoder: the chunk's cards -> an ``n x len`` matrix, and the rejects it found.
Slot = Callable[[Cards], tuple[U8, list[tuple[int, str, str]]]]


def dgi_header(dgi: int, length: int) -> bytes:
    """``DGI ‖ L`` for a DGI of *length* bytes (1 or 3 length bytes)."""
    return encode_dgi(dgi, bytes(length))[: -length or None]


def ssse_key_dgi(key_id: int) -> int:
    return 0x8F00 | key_id


def _const_value(rec: RecordSpec) -> bytes:
    """The TLV of a record that is the same on every card, built by the record construct."""
    assert rec.const is not None
    where = f"tag {rec.tag:02X}"
    if rec.fmt == "n":  # the layout's formats have no left-zero-padded BCD
        return record_template(rec.tag, rec.len, "b", fields.encode_n(rec.const, rec.len, where))
    if rec.fmt == "b":
        return record_template(rec.tag, rec.len, "b", bytes.fromhex(rec.const))
    return record_template(rec.tag, rec.len, rec.fmt, rec.const)


def _fit_slot(src: str, fmt: str, n: int) -> Slot:
    """A variable-length input field in a record of *n* bytes: per card (rare, slow path)."""

    def encode(cards: Cards) -> tuple[U8, list[tuple[int, str, str]]]:
        out = np.zeros((cards.n, n), np.uint8)
        bad: list[tuple[int, str, str]] = []
        for i, value in enumerate(cards.text.get(src) or [""] * cards.n):
            try:
                if fmt == "cn":
                    raw = fields.encode_cn(value, n, src)
                elif fmt == "n":
                    raw = fields.encode_n(value, n, src)
                elif fmt == "b":
                    raw = fields.encode_b(bytes.fromhex(value), n, src)
                else:
                    raw = fields.encode_an(value, n, src, "ascii" if fmt == "an" else "gbk")
            except (ValueError, DataError) as exc:
                reason = getattr(exc, "reason", str(exc))
                bad.append((i, src, f"does not fit its card record: {reason}"))
                continue
            out[i] = np.frombuffer(raw, np.uint8)
        return out, bad

    return encode


def _slot(rec: RecordSpec, profile: Profile) -> Slot:
    """The encoder of a per-card record value of exactly ``rec.len`` bytes."""
    src, n, fmt = rec.src or "", rec.len, rec.fmt
    where = f"record {rec.rec} (tag {rec.tag:02X}) source {src!r}"

    def fail(why: str) -> ProfileError:
        return ProfileError(f"{profile.source}: {where}: {why}")

    if src == "card_id":
        if fmt != "b" or n != 16:
            raise fail("card_id is b16")
        return lambda c: (c.card_id, [])
    if src in ("name_head", "name_ext"):
        if fmt != "gbk":
            raise fail("the name parts are gbk")
        want = 30 if src == "name_head" else 20
        if n != want:
            raise fail(f"{src} is {want} bytes")
        return lambda c: (c.name_head if src == "name_head" else c.name_ext, [])
    known = _KNOWN_LEN.get(src)
    if known is None:
        return _fit_slot(src, fmt, n)
    if fmt in ("cn", "n"):
        if src not in _DIGIT_FIELDS or known > 2 * n:
            raise fail(f"does not fit {fmt}{n}")
        pad = "F" if fmt == "cn" else "0"
        return lambda c: (bcd(_column(c, src), n, pad), [])
    if fmt in ("an", "gbk"):
        if known > n:
            raise fail(f"{known} characters do not fit an{n}")

        def text(c: Cards) -> tuple[U8, list[tuple[int, str, str]]]:
            out = np.zeros((c.n, n), np.uint8)
            out[:, :known] = _column(c, src)
            return out, []

        return text
    raise fail(f"format {fmt} needs a binary source")


def _column(c: Cards, src: str) -> U8:
    if src == "person_code":
        return c.person_code
    mat = c.fixed.get(src)
    if mat is None:  # accepted_date: optional, 8 digits when given (else all zero digits)
        mat = fixed_text([v or "0" * _KNOWN_LEN[src] for v in c.text[src]], _KNOWN_LEN[src])[0]
    return mat


def _constant_dgi(c: ConstantDgi) -> bytes:
    body = b"".join(tlv_encode(t.tag, t.value) for t in c.tlv)
    if c.template is not None:
        body = tlv_encode(c.template, body)
    return encode_dgi(c.dgi, body)


#: Upper-case hex digits of every byte value (for the card identification code on the face).
_HEX = np.frombuffer(bytes(range(256)).hex().upper().encode("ascii"), np.uint8).reshape(256, 2)


def _f_pad(count: NDArray[np.int64]) -> Var:
    """An ``F`` (ASCII) for each card where *count* is 1, nothing where it is 0."""
    return Var(np.full(int(count.sum()), ord("F"), np.uint8), count.astype(np.int64))


def _amounts_bcd(values: np.ndarray) -> U8:
    """12-digit BCD (6 bytes) of each amount."""
    digits = np.empty((len(values), 12), np.uint8)
    v = values.astype(np.int64).copy()
    for j in range(11, -1, -1):
        digits[:, j] = v % 10 + 48
        v //= 10
    return bcd(digits, 6, "0")


@dataclass(slots=True)
class Built:
    """The record contents of a chunk's cards (``content``, with their ``sizes``) and the
    cards refused while encoding (index into the chunk's cards, field, reason)."""

    content: Var  # padded to whole 16-byte blocks
    sizes: NDArray[np.int64]  # each content's length without the padding
    refused: list[tuple[int, str, str]]


class ChunkBuilder:
    """A profile's chip data compiled once (see the module docstring)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        ss = profile.ssse
        # SSSE: records (constant or slot), 9F0C, 9F10, then the keys and the PIN block
        segs: list[bytes | Slot] = []
        for f in ss.files:
            for rec in sorted(f.records, key=lambda r: r.rec):
                dgi = (f.sfi << 8) | rec.rec
                segs.append(dgi_header(dgi, 2 + rec.len))
                if rec.const is not None:
                    segs.append(_const_value(rec))
                else:
                    segs.append(record_template(rec.tag, rec.len, "b")[:2])
                    segs.append(_slot(rec, profile))
        segs.append(encode_dgi(SSSE_ALG_DGI, bytes([ss.algorithm_indicator, profile.generation])))
        tries = bytes([profile.pin.try_limit, profile.pin.try_limit])
        segs.append(encode_dgi(SSSE_PIN_TRY_DGI, tries))
        self.ssse_segments = segs
        self.key_ids = tuple(k.id for k in ss.keys)
        self.ssse_aid_head = bytes((len(ss.df_name),)) + ss.df_name
        self.face = tuple(f.src for f in profile.card_face)
        self.extra_pboc: ExtraDgis | None = None
        ms = profile.mag_stripe
        self.tracks = (ms.track1, ms.track2) if ms is not None else (False, False)
        self.has_tracks = ms is not None
        p = profile.pboc
        self.pboc = p
        if p is None:
            return
        self.pboc_aid_head = bytes((len(p.aid),)) + p.aid
        #: pboc.oda: the issuer certificate names the leading PAN digits of every card
        self.issuer_id = p.oda.issuer_id if p.oda is not None else ""
        consts = {c.dgi: _constant_dgi(c) for c in p.constant_dgis}
        early = [d for d in consts if d >= 0x9000 and d not in (0x9200,)]
        late = [d for d in consts if d not in early]
        self.head = b"".join(consts[d] for d in sorted(early))
        self.records_const = b"".join(consts[d] for d in sorted(late) if d < 0x0D00)
        tail = [consts[d] for d in sorted(late) if d >= 0x0D00]
        tail.append(encode_dgi(0x9200, p.iad))
        self.tail = b"".join(tail)
        cur = bytes.fromhex(p.ec.currency)
        self.sc = p.service_code
        self.disc = p.track2_discretionary
        self.disc_digits = "".join(c for c in p.track2_discretionary if c.isdigit())
        # the constants must make valid tracks (the per-card values are validated input)
        magstripe.tracks("6228480000000000000", " /", "3012", self.sc, self.disc)
        self.p0301_tail = b"\x9f\x08\x02" + p.app_version
        self.p0302_head = b"\x5f\x28\x02" + cur + b"\x9f\x07\x02\xff\x00"
        self.p0302_mid = b"\x5f\x30\x02" + bytes.fromhex("0" + p.service_code) + b"\x9f\x42\x02"
        self.p0302_mid += cur
        self.p0302_idtype = b"\x9f\x62\x01" + bytes((p.id_type,))
        self.ext_gbk = p.extended_name_gbk
        self.d0d01_head = b"\x9f\x51\x02" + cur
        self.d0d01_tail = b"\x9f\x74\x06" + p.ec.auth_code.encode("ascii")
        self.pin_try = encode_dgi(0x9010, bytes([profile.pin.try_limit] * 2))

    # -- per chunk ---------------------------------------------------------------------------

    def _ssse_clear(self, c: Cards, refused: list[tuple[int, str, str]]) -> list[Segment]:
        parts: list[Segment] = []
        for seg in self.ssse_segments:
            if isinstance(seg, bytes):
                parts.append(seg)
            else:
                mat, bad = seg(c)
                refused += bad
                parts.append(mat)
        return parts

    def ssse_clear(self, c: Cards) -> list[bytes]:
        """The clear SSSE DGIs (records, 9F0C, 9F10) of each card."""
        return assemble(c.n, self._ssse_clear(c, [])).items()

    def _ssse(
        self, c: Cards, keys: ChunkKeyData, refused: list[tuple[int, str, str]]
    ) -> list[Segment]:
        parts = self._ssse_clear(c, refused)
        for i, key_id in enumerate(self.key_ids):
            parts.append(dgi_header(ssse_key_dgi(key_id), 16))
            parts.append(keys.ssse[:, 16 * i : 16 * i + 16])
        pin_len = keys.pins.shape[1]
        parts.append(SSSE_PIN_DGI.to_bytes(2, "big") + bytes((pin_len,)))
        parts.append(keys.pins)
        return parts

    def _pboc(self, c: Cards, keys: ChunkKeyData, pan: Var) -> list[Segment]:
        n = c.n
        disc = (self.sc + self.disc_digits).encode("ascii")
        plen = pan.lengths
        yymm = c.fixed["expiry_date"][:, 2:6]
        # 0101: 57 track 2 equivalent data (ISO/IEC 7813 track 2, '=' as D, F padded)
        t2len = plen + 5 + len(disc)
        t2b = hex_pack(assemble(n, [pan, b"D", yymm, disc, _f_pad(t2len & 1)]))
        n1 = t2b.lengths + 2
        # 0301: 5A PAN (F padded), 5F24 expiry, 5F25 effective date, 9F08
        panf = hex_pack(assemble(n, [pan, _f_pad(plen & 1)]))
        r0301: list[Segment] = [
            b"\x5a",
            panf.lengths.astype(np.uint8)[:, None],
            panf,
            b"\x5f\x24\x03",
            bcd(c.fixed["expiry_date"][:, 2:8], 3, "F"),
            b"\x5f\x25\x03",
            bcd(c.fixed["issue_date"][:, 2:8], 3, "F"),
            self.p0301_tail,
        ]
        n3 = segment_lengths(n, r0301)
        # 0302: PAN sequence, names, service code, currency, identity number and type
        latin = text_var(c.latin, "ascii")
        r0302: list[Segment] = [
            b"\x5f\x34\x01",
            bcd(c.fixed["pan_seq"], 1, "0"),
            self.p0302_head + b"\x5f\x20",
            latin.lengths.astype(np.uint8)[:, None],
            latin,
            self.p0302_mid,
        ]
        if self.ext_gbk:
            name = c.name_gbk
            r0302 += [b"\x9f\x0b", name.lengths.astype(np.uint8)[:, None], name]
        r0302 += [b"\x9f\x61\x12", c.fixed["ssn"], self.p0302_idtype]
        n4 = segment_lengths(n, r0302)
        long4 = n4 >= 0x80
        h4 = np.zeros((n, 6), np.uint8)
        h4[:, 0], h4[:, 1] = 0x03, 0x02
        h4[:, 2] = np.where(long4, n4 + 3, n4 + 2) & 0xFF
        h4[:, 3] = 0x70
        h4[:, 4] = np.where(long4, 0x81, n4 & 0xFF)
        h4[:, 5] = n4 & 0xFF
        head4 = Var(h4[np.arange(6) < np.where(long4, 6, 5)[:, None]], np.where(long4, 6, 5))
        # 0D01: electronic cash (9F51, 9F79, 9F77, 9F78, 9F6D, 9F74)
        ec = c.ec
        d0d01: list[Segment] = [self.d0d01_head]
        for tag, j in ((b"\x9f\x79\x06", 0), (b"\x9f\x77\x06", 1), (b"\x9f\x78\x06", 2)):
            d0d01 += [tag, _amounts_bcd(ec[:, j])]
        d0d01 += [b"\x9f\x6d\x06", _amounts_bcd(ec[:, 3]), self.d0d01_tail]
        d0d01_len = sum(len(s) if isinstance(s, bytes) else 6 for s in d0d01)
        segs: list[Segment] = [
            self.head,
            b"\x01\x01",
            np.stack([n1 + 2, np.full(n, 0x70), n1], axis=1).astype(np.uint8),
            b"\x57",
            t2b.lengths.astype(np.uint8)[:, None],
            t2b,
            b"\x03\x01",
            np.stack([n3 + 2, np.full(n, 0x70), n3], axis=1).astype(np.uint8),
            *r0301,
            head4,
            *r0302,
            self.records_const + b"\x0d\x01" + bytes((d0d01_len,)),
            *d0d01,
            self.tail,
            b"\x80\x00" + bytes((keys.pboc_mk.shape[1],)),
            keys.pboc_mk,
            b"\x90\x00" + bytes((keys.pboc_kcv.shape[1],)),
            keys.pboc_kcv,
            b"\x80\x10" + bytes((keys.pins.shape[1],)),
            keys.pins,
            self.pin_try,
        ]
        if self.extra_pboc is not None:
            dgis = assemble(n, segs)
            return [dgis, self.extra_pboc(c, dgis)]
        return segs

    def _face(self, c: Cards, refused: list[tuple[int, str, str]]) -> list[Segment]:
        """The card-face values joined by 1F (UTF-8), length-prefixed (2 bytes)."""
        n = c.n
        segs: list[Segment] = []
        for k, src in enumerate(self.face):
            if k:
                segs.append(b"\x1f")
            if src == "card_id":
                segs.append(_HEX[c.card_id].reshape(n, 32))
            elif src == "name_latin":
                segs.append(text_var(c.latin, "utf-8"))
            elif src == "pin":
                segs.append(text_var(c.pins, "utf-8"))
            elif src == "person_code":
                segs.append(c.person_code)
            elif src == "expiry_yymm" and self.pboc is not None:
                segs.append(c.fixed["expiry_date"][:, 2:6])
            elif src in c.fixed:
                segs.append(c.fixed[src])
            else:
                segs.append(text_var(c.text.get(src) or [""] * n, "utf-8"))
        size = segment_lengths(n, segs)
        for i in np.flatnonzero(size > 0xFFFF).tolist():
            refused.append((i, "(record)", "card-face data is too long"))
        return [be_uint(np.minimum(size, 0xFFFF), 2), *segs]

    def build(self, c: Cards, keys: ChunkKeyData) -> Built:
        """The record content of every card of the chunk (see the module docstring), each
        zero-padded to whole 16-byte blocks for sealing (:attr:`Built.sizes`: the lengths)."""
        n = c.n
        refused: list[tuple[int, str, str]] = []
        if n == 0:
            empty = np.zeros(0, np.int64)
            return Built(Var(np.zeros(0, np.uint8), empty), empty, refused)
        sdgis = self._ssse(c, keys, refused)
        face = self._face(c, refused)
        napps = b"\x02" if self.pboc is not None else b"\x01"
        segs: list[Segment] = [c.fixed["ssn"]]
        if self.pboc is None:
            segs += [b"\x00", c.card_id, napps + self.ssse_aid_head]
            segs += [be_uint(segment_lengths(n, sdgis), 4), *sdgis, *face, b"\x00\x00\x00"]
        else:
            pan = text_var(c.text["pan"], "ascii")
            pdgis = self._pboc(c, keys, pan)
            segs += [pan.lengths.astype(np.uint8)[:, None], pan, c.card_id]
            segs += [napps + self.ssse_aid_head, be_uint(segment_lengths(n, sdgis), 4), *sdgis]
            segs += [self.pboc_aid_head, be_uint(segment_lengths(n, pdgis), 4), *pdgis]
            segs += [*face, *self._tracks(c, pan, refused)]
            if self.issuer_id:  # one reason per refused card
                seen = {i for i, _f, _r in refused}
                refused += [
                    r for r in _other_issuer(c.text["pan"], self.issuer_id) if r[0] not in seen
                ]
        sizes = segment_lengths(n, segs)
        pad = -sizes % 16
        segs.append(Var(np.zeros(int(pad.sum()), np.uint8), pad))
        return Built(assemble(n, segs), sizes, refused)

    def _tracks(self, c: Cards, pan: Var, refused: list[tuple[int, str, str]]) -> list[Segment]:
        """Tracks 1 and 2 (ISO/IEC 7813, as :mod:`cardperso.codec.magstripe` makes them),
        each length-prefixed, then an empty track 3."""
        if not self.has_tracks:
            return [b"\x00\x00\x00"]
        n = c.n
        sc_disc = (self.sc + self.disc).encode("ascii")
        sc_digits = (self.sc + self.disc_digits).encode("ascii")
        latin = text_var(c.latin, "ascii")
        yymm = c.fixed["expiry_date"][:, 2:6]
        t1: list[Segment] = [b"B", pan, b"^", latin, b"^", yymm, sc_disc]
        t2: list[Segment] = [pan, b"=", yymm, sc_digits]
        len1, len2 = segment_lengths(n, t1), segment_lengths(n, t2)
        bad = (len1 > magstripe.TRACK1_MAX) | (len2 > magstripe.TRACK2_MAX)
        for i in np.flatnonzero(bad).tolist():  # only a profile's long constants get here
            yy = yymm[i].tobytes().decode("ascii")
            try:
                magstripe.tracks(c.text["pan"][i], c.latin[i], yy, self.sc, self.disc)
            except DataError as exc:
                refused.append((i, exc.field or "(record)", f"magnetic stripe: {exc.reason}"))
        out: list[Segment] = []
        for on, track, size in zip(self.tracks, (t1, t2), (len1, len2)):
            if on:
                out += [(size & 0xFF).astype(np.uint8)[:, None], *track]
            else:
                out.append(b"\x00")
        out.append(b"\x00")
        return out


def _other_issuer(pans: Sequence[str], issuer_id: str) -> list[tuple[int, str, str]]:
    """The cards whose PAN does not start with the ODA issuer identifier (a terminal compares
    the two: such a card would fail offline data authentication)."""
    reason = f"does not start with the issuer identifier {issuer_id} (pboc.oda.issuer_id)"
    return [(i, "pan", reason) for i, p in enumerate(pans) if not p.startswith(issuer_id)]


def refused_rows(c: Cards, refused: list[tuple[int, str, str]]) -> list[RejectRow]:
    """The cards refused while encoding, as reject rows (line, field, reason, masked ssn)."""
    out = []
    for i, fld, reason in refused:
        masked = c.masked[i].tobytes().decode("ascii")
        out.append((int(c.lines[i]), fld, reason, masked, 0))
    return out


def pboc_dgis(
    profile: Profile, values: Mapping[str, Any], wrapped_mk: bytes, kcvs: bytes, wrapped_pin: bytes
) -> bytes:
    """The PBOC DGIs of one card (the chunk path with one card): *values* holds ``pan``,
    ``pan_seq``, ``expiry_date``, ``issue_date``, ``name_latin``, ``name_head`` (+
    ``name_ext``, the GBK name), ``ssn`` and ``ec`` (four amounts); the keys arrive wrapped."""
    name = values["name_head"] + values.get("name_ext", b"")
    builder = ChunkBuilder(profile)
    assert builder.pboc is not None
    text: dict[str, Sequence[str]] = {
        f: [str(values.get(f) or "")] for f in ("pan", "expiry_date", "issue_date", "ssn")
    }
    default = builder.pboc.latin_name_default

    def row(b: bytes) -> U8:
        return np.frombuffer(b, np.uint8).reshape(1, -1)

    card = Cards(
        1,
        np.zeros(1, np.int64),
        text,
        {
            "ssn": np.frombuffer(values["ssn"].encode("ascii"), np.uint8).reshape(1, -1),
            "pan_seq": np.frombuffer(values["pan_seq"].encode("ascii"), np.uint8).reshape(1, 2),
            "expiry_date": row(values["expiry_date"].encode("ascii")),
            "issue_date": row(values["issue_date"].encode("ascii")),
        },
        Var(np.frombuffer(name, np.uint8), np.array([len(name)], np.int64)),
        np.zeros((1, 30), np.uint8),
        np.zeros((1, 20), np.uint8),
        np.zeros((1, 12), np.uint8),
        np.zeros((1, 16), np.uint8),
        np.array([values["ec"]], np.int64),
        [""],
        [(values.get("name_latin") or default).upper()],
        np.zeros((1, 18), np.uint8),
    )

    keys = ChunkKeyData(row(wrapped_mk), row(kcvs), np.zeros((1, 0), np.uint8), row(wrapped_pin))
    return assemble(1, builder._pboc(card, keys, text_var(card.text["pan"], "ascii"))).item(0)


def oda_stage(oda: OdaChunk) -> ExtraDgis:
    """The ODA DGIs of a chunk (:class:`cardperso.prep.oda.OdaChunk`) as the PBOC stage of
    extra DGIs: one pool read and the signatures for the whole chunk."""

    def stage(c: Cards, dgis: Var) -> Var:
        yymm = [x[2:6] for x in c.text["expiry_date"]]
        got = oda.build(c.lines.tolist(), dgis.items(), c.text["pan"], yymm)
        return var_of(got)

    return stage
