"""Precompiled DGI templates: a profile becomes byte constants plus a few per-card slots.

How this works
--------------
Every chip byte that is the same on every card of a profile (DGI headers, record tags and
lengths, constant records, constant DGIs) is computed **once** when a :class:`SsseTemplate` or
:class:`PbocTemplate` is built. For the SSSE application, whose records all have fixed lengths,
the template is compiled into one Python function (source generated from the profile) that
returns ``b"".join((CONST0, slot1, CONST1, slot2, ...))``: per card, only the slots are encoded
(a BCD date is ``bytes.fromhex(value)``, a text field ``value.encode().ljust(n, b"\\0")``).
The PBOC template builds the few per-card DGIs (0101, 0301, 0302, 0D01, 8000, 9000, 8010) with
precomputed tag/length prefixes and splices them between the constant DGIs.

DGI numbers and contents follow ``docs/card-dgi-map.md`` (the contract with the virtual card).
Secret DGIs arrive here already encrypted under the transport KEK.
"""

from __future__ import annotations

from typing import Any

from cardperso.codec.dgi import encode_dgi
from cardperso.codec.magstripe import track2_equivalent
from cardperso.codec.tlv import encode as tlv_encode
from cardperso.errors import ProfileError
from cardperso.profiles.model import ConstantDgi, Profile, RecordSpec

__all__ = ["PbocTemplate", "SsseTemplate", "dgi_header", "ssse_key_dgi"]

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


def dgi_header(dgi: int, length: int) -> bytes:
    """``DGI ‖ L`` for a DGI of *length* bytes (1 or 3 length bytes)."""
    return encode_dgi(dgi, bytes(length))[: -length or None]


def ssse_key_dgi(key_id: int) -> int:
    return 0x8F00 | key_id


def _slot_expr(rec: RecordSpec, profile: Profile) -> str:
    """Python expression for a record value of exactly ``rec.len`` bytes from record ``v``."""
    src, n, fmt = rec.src, rec.len, rec.fmt
    where = f"record {rec.rec} (tag {rec.tag:02X}) source {src!r}"
    if src == "card_id":
        if fmt != "b" or n != 16:
            raise ProfileError(f"{profile.source}: {where}: card_id is b16")
        return 'v["card_id"]'
    if src in ("name_head", "name_ext"):
        if fmt != "gbk":
            raise ProfileError(f"{profile.source}: {where}: the name parts are gbk")
        want = 30 if src == "name_head" else 20
        if n != want:
            raise ProfileError(f"{profile.source}: {where}: {src} is {want} bytes")
        return f'v["{src}"].ljust({n}, b"\\0")'
    known = _KNOWN_LEN.get(src or "")
    if known is None:
        return f'_fit(v["{src}"], {fmt!r}, {n}, {src!r})'
    if fmt == "cn":
        if src not in _DIGIT_FIELDS or known > 2 * n:
            raise ProfileError(f"{profile.source}: {where}: does not fit cn{n}")
        pad = "F" * (2 * n - known)
        return f'bytes.fromhex(v["{src}"] + "{pad}")' if pad else f'bytes.fromhex(v["{src}"])'
    if fmt == "n":
        if src not in _DIGIT_FIELDS or known > 2 * n:
            raise ProfileError(f"{profile.source}: {where}: does not fit n{n}")
        pad = "0" * (2 * n - known)
        return f'bytes.fromhex("{pad}" + v["{src}"])' if pad else f'bytes.fromhex(v["{src}"])'
    if fmt in ("an", "gbk"):
        if known > n:
            raise ProfileError(f"{profile.source}: {where}: {known} characters do not fit an{n}")
        enc = "ascii" if fmt == "an" else "gbk"
        tail = f'.ljust({n}, b"\\0")' if known < n else ""
        return f'v["{src}"].encode("{enc}"){tail}'
    raise ProfileError(f"{profile.source}: {where}: format {fmt} needs a binary source")


def _fit(value: str, fmt: str, n: int, field: str) -> bytes:
    """Encode a variable-length input field into a record of *n* bytes (slow path, rare)."""
    from cardperso.codec import fields
    from cardperso.prep.validate import Reject

    try:
        if fmt == "cn":
            return fields.encode_cn(value, n, field)
        if fmt == "n":
            return fields.encode_n(value, n, field)
        if fmt == "b":
            return fields.encode_b(bytes.fromhex(value), n, field)
        return fields.encode_an(value, n, field, "ascii" if fmt == "an" else "gbk")
    except (ValueError, Exception) as exc:  # EncodingError or bad hex
        reason = getattr(exc, "reason", str(exc))
        raise Reject(field, f"does not fit its card record: {reason}") from None


def _const_value(rec: RecordSpec) -> bytes:
    from cardperso.codec import fields

    assert rec.const is not None
    if rec.fmt == "cn":
        return fields.encode_cn(rec.const, rec.len, f"tag {rec.tag:02X}")
    if rec.fmt == "n":
        return fields.encode_n(rec.const, rec.len, f"tag {rec.tag:02X}")
    if rec.fmt == "b":
        return bytes.fromhex(rec.const)
    charset = "ascii" if rec.fmt == "an" else "gbk"
    return fields.encode_an(rec.const, rec.len, f"tag {rec.tag:02X}", charset)


class SsseTemplate:
    """The SSSE application's DGIs for one profile (records, algorithm indicator, PIN tries,
    then the encrypted keys 8Fxx and PIN block 8F10)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        ss = profile.ssse
        parts: list[str] = []
        consts: dict[str, bytes] = {}
        pending = bytearray()
        self.record_dgis: list[tuple[int, RecordSpec]] = []

        def flush() -> None:
            if pending:
                name = f"C{len(consts)}"
                consts[name] = bytes(pending)
                parts.append(name)
                pending.clear()

        for f in ss.files:
            for rec in sorted(f.records, key=lambda r: r.rec):
                dgi = (f.sfi << 8) | rec.rec
                self.record_dgis.append((dgi, rec))
                pending += dgi_header(dgi, 2 + rec.len) + bytes([rec.tag, rec.len])
                if rec.const is not None:
                    pending += _const_value(rec)
                else:
                    flush()
                    parts.append(_slot_expr(rec, profile))
        gen = bytes([ss.algorithm_indicator, profile.generation])
        pending += encode_dgi(SSSE_ALG_DGI, gen)
        tries = bytes([profile.pin.try_limit, profile.pin.try_limit])
        pending += encode_dgi(SSSE_PIN_TRY_DGI, tries)
        flush()
        clear_parts = list(parts)
        # encrypted DGIs: 8Fxx keys (16 bytes each, slices of the card's wrapped key blob),
        # then 8F10 the PIN block (its length depends on the KEK block size)
        self.key_ids = tuple(k.id for k in ss.keys)
        for i, key_id in enumerate(self.key_ids):
            pending += dgi_header(ssse_key_dgi(key_id), 16)
            flush()
            parts.append(f"sk[{16 * i}:{16 * i + 16}]")
        pending += SSSE_PIN_DGI.to_bytes(2, "big")
        flush()
        parts.append("bytes((len(pin),))")
        parts.append("pin")
        src = (
            "def clear(v):\n    return b''.join((" + ", ".join(clear_parts) + ",))\n"
            "def build(v, sk, pin):\n    return b''.join((" + ", ".join(parts) + ",))\n"
        )
        namespace: dict[str, Any] = dict(consts)
        namespace["_fit"] = _fit
        exec(compile(src, f"<ssse template {profile.name}>", "exec"), namespace)  # noqa: S102
        self._clear = namespace["clear"]
        self.build = namespace["build"]
        self.source = src

    def clear_dgis(self, v: dict[str, Any]) -> bytes:
        """The clear DGIs of one card (records, 9F0C, 9F10)."""
        out: bytes = self._clear(v)
        return out


def _ber_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    return bytes((0x82, n >> 8, n & 0xFF))


def _constant_dgi(c: ConstantDgi) -> bytes:
    body = b"".join(tlv_encode(t.tag, t.value) for t in c.tlv)
    if c.template is not None:
        body = tlv_encode(c.template, body)
    return encode_dgi(c.dgi, body)


class PbocTemplate:
    """The PBOC debit / electronic-cash application's DGIs for one profile."""

    def __init__(self, profile: Profile) -> None:
        p = profile.pboc
        if p is None:
            raise ProfileError(f"{profile.source}: profile {profile.name} has no 'pboc' section")
        self.spec = p
        consts = {c.dgi: _constant_dgi(c) for c in p.constant_dgis}
        early = [d for d in consts if d >= 0x9000 and d not in (0x9200,)]
        late = [d for d in consts if d not in early]
        self.head = b"".join(consts[d] for d in sorted(early))
        self.records_const = b"".join(consts[d] for d in sorted(late) if d < 0x0D00)
        tail = [consts[d] for d in sorted(late) if d >= 0x0D00]
        tail.append(encode_dgi(0x9200, p.iad))
        self.tail = b"".join(tail)
        cur = bytes.fromhex(p.ec.currency)
        self.sc_disc = p.service_code + p.track2_discretionary
        self.p0301_tail = b"\x9f\x08\x02" + p.app_version
        self.p0302_head = b"\x5f\x28\x02" + cur + b"\x9f\x07\x02\xff\x00"
        self.p0302_sc = b"\x5f\x30\x02" + bytes.fromhex("0" + p.service_code)
        self.p0302_cur = b"\x9f\x42\x02" + cur
        self.p0302_idtype = b"\x9f\x62\x01" + bytes((p.id_type,))
        self.latin_default = p.latin_name_default
        self.ext_gbk = p.extended_name_gbk
        self.d0d01_head = b"\x9f\x51\x02" + cur
        self.d0d01_tail = b"\x9f\x74\x06" + p.ec.auth_code.encode("ascii")
        self.pin_try = encode_dgi(0x9010, bytes([profile.pin.try_limit] * 2))

    def dgis(self, v: dict[str, Any], wrapped_mk: bytes, kcvs: bytes, wrapped_pin: bytes) -> bytes:
        """All DGIs of one card: constants, per-card records and EC data, then 8000/9000/8010."""
        pan: str = v["pan"]
        t2 = v.get("track2_data") or pan + "=" + v["expiry_yymm"] + self.sc_disc
        t2b = track2_equivalent(t2)  # tag 57 from the ISO/IEC 7813 track 2 data
        r0101 = b"\x57" + bytes((len(t2b),)) + t2b
        panh = pan + "F" if len(pan) & 1 else pan
        exp, eff = v["expiry_date"][2:], v["issue_date"][2:]
        r0301 = (
            bytes.fromhex(f"5A{len(panh) >> 1:02X}{panh}5F2403{exp}5F2503{eff}") + self.p0301_tail
        )
        latin = (v.get("name_latin") or self.latin_default).upper().encode("ascii")
        parts = [
            b"\x5f\x34\x01",
            bytes.fromhex(v["pan_seq"]),
            self.p0302_head,
            b"\x5f\x20",
            bytes((len(latin),)),
            latin,
            self.p0302_sc,
            self.p0302_cur,
        ]
        if self.ext_gbk:
            gbk = v["name_head"] + v["name_ext"]
            parts += [b"\x9f\x0b", bytes((len(gbk),)), gbk]
        parts += [b"\x9f\x61\x12", v["ssn"].encode("ascii"), self.p0302_idtype]
        r0302 = b"".join(parts)
        bal, lim, single, reset = v["ec"]
        d0d01 = (
            self.d0d01_head
            + bytes.fromhex(
                f"9F7906{bal:012d}9F7706{lim:012d}9F7806{single:012d}9F6D06{reset:012d}"
            )
            + self.d0d01_tail
        )
        n1, n3, n4 = len(r0101), len(r0301), len(r0302)
        return b"".join(
            (
                self.head,
                b"\x01\x01",
                bytes((n1 + 2, 0x70, n1)),
                r0101,
                b"\x03\x01",
                bytes((n3 + 2, 0x70, n3)),
                r0301,
                b"\x03\x02" + bytes((n4 + 2, 0x70, n4)) if n4 < 0x80 else _dgi_70(b"\x03\x02", n4),
                r0302,
                self.records_const,
                b"\x0d\x01",
                bytes((len(d0d01),)),
                d0d01,
                self.tail,
                b"\x80\x00",
                bytes((len(wrapped_mk),)),
                wrapped_mk,
                b"\x90\x00",
                bytes((len(kcvs),)),
                kcvs,
                b"\x80\x10",
                bytes((len(wrapped_pin),)),
                wrapped_pin,
                self.pin_try,
            )
        )


def _dgi_70(dgi: bytes, n: int) -> bytes:
    """DGI header and ``70`` template header for a record of *n* (128-250) bytes."""
    inner = bytes((0x70,)) + _ber_len(n)
    return dgi + bytes((n + len(inner),)) + inner
