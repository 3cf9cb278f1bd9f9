"""A straightforward per-card data preparation: the baseline ``bench_prep.py`` compares prep with.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_prep_naive.py [--count 20000]``
(``bench_prep.py`` imports :func:`run_naive` and reports the ratio in the same run.)

What a competent engineer writes in an afternoon with the project's building blocks and no
batching: the CSV read with the ``csv`` module, each record checked with plain per-field Python
(the codec's validators, one field after the other), its photo read and checked, the
duplicates kept in sets, every per-card key derived with its own cipher call (one cipher object
per key: 7 SSSE keys, 3 PBOC option A keys and their check values), each wrapped under the
transport KEK on its own, the DGIs built per record, the record sealed (AES-CTR with its own
cipher object) and MACed (HMAC-SHA-256), written through :func:`cardperso.outputs.atomic_output`.

The same work as ``cardperso prep`` for the reference profile, not the same bytes: the same
validation rules and reject reasons (field, reason, line), the same keys derived and wrapped,
the same DGIs (docs/card-dgi-map.md: SSSE records, 9F0C, 9F10, 8Fxx, 8F10; PBOC constants,
0101, 0301, 0302, 0D01, 9200, 8000, 9000, 8010, 9010), face and tracks, sealing and a MAC per
record and per file. The container is a simple one of its own (this is a benchmark, not a
second implementation: nothing reads its output). Lives in benchmarks/ only.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import hmac
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchenv  # noqa: E402

from cardperso.codec import fields, magstripe, numbers  # noqa: E402
from cardperso.codec.dgi import encode_dgi  # noqa: E402
from cardperso.codec.photo import CARD_PHOTO, check_photo, frame  # noqa: E402
from cardperso.codec.tlv import encode as tlv  # noqa: E402
from cardperso.crypto import primitives as cp  # noqa: E402
from cardperso.errors import DataError  # noqa: E402
from cardperso.keystore.base import KeyStore  # noqa: E402
from cardperso.keystore.software import SoftwareKeyStore  # noqa: E402
from cardperso.outputs import atomic_output  # noqa: E402
from cardperso.profiles.loader import load_profile  # noqa: E402
from cardperso.profiles.model import Profile  # noqa: E402

KEYS = ROOT / "keys-sample" / "keys.json"
NATIONS = {f"{i:02d}" for i in range(1, 57)} | {"97", "98"}
LATIN = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz /.-")
ALNUM = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
PHOTO_MAX = 100 * 1024


class Reject(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field, self.reason = field, reason


def date(value: str, field: str) -> datetime.date:
    try:
        d = numbers.parse_date(value, field)
    except DataError as exc:
        raise Reject(field, exc.reason) from None
    if d.year < 1900:
        raise Reject(field, "year before 1900 is not plausible")
    return d


def check(codec_check: Any, value: str, field: str) -> None:
    try:
        codec_check(value, field=field)
    except DataError as exc:
        raise Reject(field, exc.reason) from None


def amount(rec: dict[str, str], field: str, default: int) -> int:
    s = rec.get(field) or ""
    if not s:
        return default
    if not (s.isascii() and s.isdigit()) or len(s) > 12:
        raise Reject(field, "must be a whole number of fen (0-999999999999)")
    return int(s)


def validate(rec: dict[str, str], profile: Profile, base: Path) -> dict[str, Any]:
    """Every rule of the input, one field after the other (prep's rules and reasons)."""
    required = ["ssn", "name", "gender", "nation", "birth_date", "birth_place", "region"]
    required += ["card_no", "issue_date", "expiry_date", "photo", "bank_code", "pan", "pan_seq"]
    for f in required:
        if not rec.get(f):
            raise Reject(f, "required field is empty" if f in rec else "required field is missing")
    v: dict[str, Any] = dict(rec)
    birth = date(v["birth_date"], "birth_date")
    if birth > datetime.date.today():
        raise Reject("birth_date", "is in the future")
    check(numbers.check_resident_id, v["ssn"], "ssn")
    if v["ssn"][6:14] != v["birth_date"]:
        raise Reject("birth_date", "does not match the birth date in ssn")
    if v["gender"] not in ("1", "2"):
        raise Reject("gender", "must be 1 (male) or 2 (female)")
    if (int(v["ssn"][16]) % 2 == 1) != (v["gender"] == "1"):
        raise Reject("gender", "does not match the gender digit of ssn (odd = male)")
    if v["nation"] not in NATIONS:
        raise Reject("nation", "must be a GB 3304 ethnic-group code (01-56, 97, 98)")
    check(numbers.check_region, v["birth_place"], "birth_place")
    check(numbers.check_region, v["region"], "region")
    check(numbers.check_card_number, v["card_no"], "card_no")
    issue = date(v["issue_date"], "issue_date")
    if date(v["expiry_date"], "expiry_date") <= issue:
        raise Reject("expiry_date", "must be after issue_date")
    if birth > issue:
        raise Reject("birth_date", "is after issue_date")
    if v.get("accepted_date") and date(v["accepted_date"], "accepted_date") > issue:
        raise Reject("accepted_date", "is after issue_date")
    if v.get("application_type") and v["application_type"] not in ("batch", "sporadic"):
        raise Reject("application_type", "must be batch or sporadic")
    name = v["name"]
    try:
        raw = name.encode("gbk")
    except UnicodeEncodeError as exc:
        ch = name[exc.start]
        raise Reject(
            "name", f"character at position {exc.start} (U+{ord(ch):04X}) cannot be encoded in GBK"
        ) from None
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise Reject("name", "contains a control character")
    if '"' in name:
        raise Reject("name", 'contains a double quote (")')
    if name != name.strip():
        raise Reject("name", "has leading or trailing spaces")
    if len(raw) <= 30:
        v["name_head"], v["name_ext"] = raw, b""
    else:
        try:
            v["name_head"], v["name_ext"] = fields.split_gbk(name, 30, 20, "name")
        except DataError:
            raise Reject(
                "name", f"is {len(raw)} bytes in GBK, max 50 (30 name + 20 extension)"
            ) from None
    latin = v.get("name_latin")
    if latin and (not 2 <= len(latin) <= 26 or not LATIN.issuperset(latin)):
        raise Reject("name_latin", "must be 2-26 Latin letters, spaces, '/', '.' or '-'")
    code = v.get("person_code")
    if code and (len(code) != 12 or not ALNUM.issuperset(code)):
        raise Reject("person_code", "must be 12 characters 0-9 or A-Z")
    v["person_code"] = code or "000000000000"
    problem = photo_problem(base / v["photo"])
    if problem:
        raise Reject("photo", problem)
    pin = v.get("pin")
    if pin and (len(pin) != profile.pin.length or not pin.isdigit()):
        raise Reject("pin", f"must be {profile.pin.length} digits")
    if not (v["bank_code"].isdigit() and 3 <= len(v["bank_code"]) <= 12):
        raise Reject("bank_code", "must be 3-12 digits")
    check(numbers.check_pan, v["pan"], "pan")
    if len(v["pan_seq"]) != 2 or not v["pan_seq"].isdigit():
        raise Reject("pan_seq", "must be 2 digits")
    assert profile.pboc is not None
    ec = profile.pboc.ec
    limit = amount(v, "ec_limit", ec.default_limit)
    balance = amount(v, "ec_balance", ec.default_balance)
    single = amount(v, "ec_single_limit", ec.default_single_limit)
    reset = amount(v, "ec_reset_threshold", ec.default_reset_threshold)
    if limit > ec.max_balance_limit:
        raise Reject("ec_limit", f"exceeds the profile maximum of {ec.max_balance_limit} fen")
    for f, x in (("ec_balance", balance), ("ec_single_limit", single)):
        if x > limit:
            raise Reject(f, "exceeds ec_limit")
    if single > ec.max_single_limit:
        raise Reject("ec_single_limit", f"exceeds the profile maximum of {ec.max_single_limit} fen")
    if reset > limit:
        raise Reject("ec_reset_threshold", "exceeds ec_limit")
    if reset > ec.max_reset_threshold:
        raise Reject(
            "ec_reset_threshold", f"exceeds the profile maximum of {ec.max_reset_threshold} fen"
        )
    v["ec"] = (balance, limit, single, reset)
    cid = profile.ssse.card_id
    tail = fields.card_id_tail(cid.serial_placeholder, cid.tail)
    v["card_id"] = bytes.fromhex(v["region"]) + cid.prefix + tail
    return v


#: Photo verdicts by path: a batch that names one photo file for many records (the synthetic
#: benchmark batches share 64 photos) has each file checked once, as prep does.
_PHOTO_SEEN: dict[Path, str] = {}


def photo_problem(path: Path) -> str:
    """Read the photo and check it against the card photo specification ("" when good)."""
    if path not in _PHOTO_SEEN:
        _PHOTO_SEEN[path] = _photo_problem(path)
    return _PHOTO_SEEN[path]


def _photo_problem(path: Path) -> str:
    try:
        if path.stat().st_size > PHOTO_MAX:
            return f"is over the {PHOTO_MAX:,}-byte limit for a photo"
        data = path.read_bytes()
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    try:
        frame(data)
        if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
            return "format: the JPEG is truncated (no EOI marker)"
        check_photo(data, CARD_PHOTO)
    except DataError as exc:
        return exc.reason
    return ""


class NaiveKeys:
    """Per-card keys, one cipher call per key, each key wrapped on its own."""

    def __init__(self, store: KeyStore, profile: Profile, pin_seed: bytes) -> None:
        self.store, self.profile, self.pin_seed = store, profile, pin_seed
        self.kek = profile.transport_kek
        self.pad_pin = cp.BLOCK_SIZE[store.info(self.kek).algorithm] != 8

    def ssse(self, card_no: str) -> list[tuple[int, bytes]]:
        f = card_no[:8].encode("ascii")
        block = f + bytes(b ^ 0xFF for b in f)
        out = []
        for key in self.profile.ssse.keys:
            clear = self.store.encrypt(key.master, block)  # SM4: E(M, f ‖ ~f)
            out.append((key.id, self.store.wrap(self.kek, clear)))
        return out

    def pboc(self, pan: str, psn: str) -> tuple[bytes, bytes]:
        p = self.profile.pboc
        assert p is not None
        y = bytes.fromhex((pan + psn)[-16:].rjust(16, "0"))
        ny = bytes(b ^ 0xFF for b in y)
        wrapped, kcvs = b"", b""
        for imk in (p.imk_ac, p.imk_smi, p.imk_smc):
            mk = cp.odd_parity(self.store.encrypt(imk, y + ny))  # EMV Book 2 A1.4.1 option A
            kcvs += cp.kcv("3DES", mk)
            wrapped += self.store.wrap(self.kek, mk)
        return wrapped, kcvs

    def pin(self, v: dict[str, Any]) -> bytes:
        pin = v.get("pin") if self.profile.pin.source != "seeded" else ""
        if not pin:
            digest = hmac.new(self.pin_seed, v["ssn"].encode("ascii"), "sha256").digest()
            n = self.profile.pin.length
            pin = str(int.from_bytes(digest[:8], "big") % 10**n).zfill(n)
        block = bytes.fromhex(f"2{len(pin):X}{pin}".ljust(16, "F"))
        return self.store.wrap(self.kek, block, pad=self.pad_pin)


def record_value(rec: Any, v: dict[str, Any]) -> bytes:
    if rec.const is not None:
        value = rec.const
    elif rec.src == "card_id":
        return bytes(v["card_id"])
    elif rec.src in ("name_head", "name_ext"):
        return bytes(v[rec.src]).ljust(rec.len, b"\0")
    else:
        value = v[rec.src]
    if rec.fmt == "cn":
        return fields.encode_cn(value, rec.len, rec.src or "const")
    if rec.fmt == "n":
        return fields.encode_n(value, rec.len, rec.src or "const")
    if rec.fmt == "b":
        return bytes.fromhex(value)
    charset = "ascii" if rec.fmt == "an" else "gbk"
    return fields.encode_an(value, rec.len, rec.src or "const", charset)


def ssse_dgis(
    profile: Profile, v: dict[str, Any], keys: list[tuple[int, bytes]], pin: bytes
) -> bytes:
    ss = profile.ssse
    out = b""
    for f in ss.files:
        for rec in sorted(f.records, key=lambda r: r.rec):
            out += encode_dgi(
                (f.sfi << 8) | rec.rec, bytes([rec.tag, rec.len]) + record_value(rec, v)
            )
    out += encode_dgi(0x9F0C, bytes([ss.algorithm_indicator, profile.generation]))
    out += encode_dgi(0x9F10, bytes([profile.pin.try_limit] * 2))
    for key_id, wrapped in keys:
        out += encode_dgi(0x8F00 | key_id, wrapped)
    return out + encode_dgi(0x8F10, pin)


def constant_dgis(profile: Profile) -> bytes:
    """The profile's constant PBOC DGIs (the same on every card: encoded once)."""
    p = profile.pboc
    assert p is not None
    out = b""
    for c in sorted(p.constant_dgis, key=lambda c: c.dgi):
        body = b"".join(tlv(t.tag, t.value) for t in c.tlv)
        out += encode_dgi(c.dgi, tlv(c.template, body) if c.template is not None else body)
    return out


def pboc_dgis(
    profile: Profile, constants: bytes, v: dict[str, Any], mks: bytes, kcvs: bytes, pin: bytes
) -> bytes:
    p = profile.pboc
    assert p is not None
    cur = bytes.fromhex(p.ec.currency)
    out = constants
    pan, exp = v["pan"], v["expiry_date"][2:6]
    t2 = magstripe.track2(pan, exp, p.service_code, p.track2_discretionary)
    out += encode_dgi(0x0101, tlv(0x70, tlv(0x57, magstripe.track2_equivalent(t2))))
    r0301 = tlv(0x5A, bytes.fromhex(pan + "F" * (len(pan) % 2)))
    r0301 += tlv(0x5F24, bytes.fromhex(v["expiry_date"][2:]))
    r0301 += tlv(0x5F25, bytes.fromhex(v["issue_date"][2:]))
    r0301 += tlv(0x9F08, p.app_version)
    out += encode_dgi(0x0301, tlv(0x70, r0301))
    latin = (v.get("name_latin") or p.latin_name_default).upper().encode("ascii")
    r0302 = tlv(0x5F34, bytes.fromhex(v["pan_seq"])) + tlv(0x5F28, cur)
    r0302 += tlv(0x9F07, b"\xff\x00") + tlv(0x5F20, latin)
    r0302 += tlv(0x5F30, bytes.fromhex("0" + p.service_code)) + tlv(0x9F42, cur)
    if p.extended_name_gbk:
        r0302 += tlv(0x9F0B, v["name_head"] + v["name_ext"])
    r0302 += tlv(0x9F61, v["ssn"].encode("ascii")) + tlv(0x9F62, bytes([p.id_type]))
    out += encode_dgi(0x0302, tlv(0x70, r0302))
    bal, lim, single, reset = v["ec"]
    d0d01 = tlv(0x9F51, cur)
    for tag, x in ((0x9F79, bal), (0x9F77, lim), (0x9F78, single), (0x9F6D, reset)):
        d0d01 += tlv(tag, bytes.fromhex(f"{x:012d}"))
    d0d01 += tlv(0x9F74, p.ec.auth_code.encode("ascii"))
    out += encode_dgi(0x0D01, d0d01) + encode_dgi(0x9200, p.iad)
    out += encode_dgi(0x8000, mks) + encode_dgi(0x9000, kcvs) + encode_dgi(0x8010, pin)
    return out + encode_dgi(0x9010, bytes([profile.pin.try_limit] * 2))


def face_and_tracks(profile: Profile, v: dict[str, Any]) -> bytes:
    face = {f.name: v.get(f.src, "") for f in profile.card_face}
    latin = (v.get("name_latin") or "").upper() or " /"
    t = magstripe.tracks(v["pan"], latin, v["expiry_date"][2:6], "220", "00000")
    return (
        json.dumps(face, ensure_ascii=False).encode("utf-8")
        + b"\0"
        + t.track1.encode()
        + b"\0"
        + t.track2.encode()
    )


def seal(key: bytes, line: int, content: bytes) -> bytes:
    """AES-CTR (counter block = line ‖ block number), one cipher object per record."""
    n = (len(content) + 15) // 16
    counters = b"".join(struct.pack(">QQ", line, i) for i in range(n))
    stream = cp.ecb_encrypt("AES", key, counters)[: len(content)]
    x = int.from_bytes(content, "big") ^ int.from_bytes(stream, "big")
    return x.to_bytes(len(content), "big")


def run_naive(
    csv_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    keystore: KeyStore | str | os.PathLike[str] = KEYS,
    profile: Profile | str = "ssc3-pboc",
) -> float:
    """Prepare *csv_path* into *out_path* the straightforward way; returns cards/s (prepared +
    rejected records per wall second, the rejects written beside *out_path*)."""
    store = keystore if isinstance(keystore, KeyStore) else SoftwareKeyStore.load(keystore)
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    t0 = time.perf_counter()
    src = Path(csv_path)
    label = hashlib.sha256(b"naive " + prof.name.encode()).digest()
    x = store.wrap(prof.transport_kek, label)
    mac_key = hashlib.sha256(b"mac" + x).digest()
    seal_key = hashlib.sha256(b"enc" + x).digest()[:16]
    keys = NaiveKeys(store, prof, hashlib.sha256(b"pin" + x).digest())
    constants = constant_dgis(prof)
    seen: dict[str, dict[str, int]] = {"ssn": {}, "card_no": {}, "pan": {}}
    count = 0
    file_mac = hmac.new(mac_key, b"F", "sha256")
    with (
        src.open(newline="", encoding="utf-8") as fh,
        atomic_output(out_path, binary=True) as out,
        atomic_output(Path(out_path).with_suffix(".rejects.csv")) as rej,
    ):
        rejects = csv.writer(rej)
        rejects.writerow(["line", "field", "reason"])
        out.write(b"naive-perso/1\n")
        for line, rec in enumerate(csv.DictReader(fh), start=2):
            count += 1
            try:
                v = validate(rec, prof, src.parent)
                for f, first in seen.items():
                    if v[f] in first:
                        raise Reject(f, f"duplicate of line {first[v[f]]}")
                for f, first in seen.items():
                    first[v[f]] = line
            except Reject as r:
                rejects.writerow([line, r.field, r.reason])
                continue
            pin = keys.pin(v)
            mks, kcvs = keys.pboc(v["pan"], v["pan_seq"])
            content = b"".join(
                (
                    v["ssn"].encode() + b"\0" + v["pan"].encode() + b"\0" + v["card_id"],
                    ssse_dgis(prof, v, keys.ssse(v["card_no"]), pin),
                    pboc_dgis(prof, constants, v, mks, kcvs, pin),
                    face_and_tracks(prof, v),
                )
            )
            body = v["card_no"].encode() + seal(seal_key, line, content)
            mac = hmac.new(mac_key, b"R" + line.to_bytes(8, "big") + body, "sha256").digest()[:16]
            file_mac.update(mac)
            out.write(struct.pack(">IQ", len(body), line) + body + mac)
        out.write(b"END" + file_mac.digest())
    return count / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--keys", default=str(KEYS), help="key store file (default: the sample)")
    args = ap.parse_args()
    run = benchenv.start("bench_prep_naive")
    from cardperso.prep.synth import make_batch

    with tempfile.TemporaryDirectory(prefix="bench-naive-") as tmp:
        batch = Path(tmp) / "batch.csv"
        make_batch(batch, args.count, seed=7, photos=64)
        rate = run_naive(batch, Path(tmp) / "out.perso", args.keys, "ssc3-pboc")
        kek = SoftwareKeyStore.load(args.keys).info("transport-kek").algorithm
    print(f"naive per-card preparation, ssc3-pboc, {args.count:,} records, {kek} transport KEK:")
    print(f"{rate:,.0f} cards/s ({1e6 / rate:.1f} µs per card, one process)")
    run.end()


if __name__ == "__main__":
    main()
