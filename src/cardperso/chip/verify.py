"""Read-back verifiers, sans-IO: after personalization the host reads the card back the way its
users will and compares with what it wrote.

* :func:`verify_ssse` - the SSSE records read back (after internal and external authentication
  with the card's read key on 3rd-generation cards) must equal the personalized bytes;
* :func:`verify_pboc` - the PBOC application must answer GPO and READ RECORD with the
  personalized records and, where asked, a GENERATE AC whose ARQC verifies with the issuer
  master key (the cryptogram input and session key of :mod:`cardperso.layouts.pboc_ac`, the
  commands of :mod:`cardperso.chip.pboc_flows` that the bank's terminal sends too).

A status word other than 9000 raises :class:`~cardperso.errors.CardError`; a card that answers
but does not match raises :class:`~cardperso.chip.model.ChipFailure`.
"""

from __future__ import annotations

from collections.abc import Iterable

from cardperso.chip.gp import ok, select
from cardperso.chip.model import CardApp, CardData, ChipFailure, ChipPlan
from cardperso.chip.pboc_flows import dol_values, generate_ac, gpo, read_afl
from cardperso.chip.transport import Flow
from cardperso.codec import tlv
from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto import ecb_encrypt, equal, random_bytes
from cardperso.crypto.ssse import diversify_one
from cardperso.errors import DataError, SecurityError
from cardperso.keystore.base import KeyStore, SessionKeyMethod
from cardperso.layouts import pboc_ac

__all__ = ["SSSE_FILES", "verify_pboc", "verify_ssse"]

SSSE_FILES = {5: 0x05, 6: 0x06, 0xD: 0x0D}  # DGI high byte → SFI


def verify_ssse(
    app: CardApp, dgis: dict[int, bytes], plan: ChipPlan, keys: KeyStore, checks: list[str]
) -> Flow[None]:
    """Read back every personalized SSSE record and compare it byte for byte."""
    yield from select(app.aid, "SELECT SSSE")
    if plan.ssse_generation >= 3:
        secrets = dict(_wrapped(app))
        irk = _unwrap16(keys, plan.kek, secrets.get(0x8F00 + plan.ssse_irk))
        rk = _unwrap16(keys, plan.kek, secrets.get(0x8F00 + plan.ssse_read_key))
        factor, rnd = random_bytes(8), random_bytes(8)
        internal = CommandAPDU(0x00, 0x88, 0x00, plan.ssse_ia_p2, factor + rnd, le=256)
        answer = ok((yield internal.to_bytes()), "SSSE INTERNAL AUTHENTICATE")
        k_d = diversify_one(irk, plan.ssse_algorithm, factor)
        if not equal(answer[:16], ecb_encrypt(plan.ssse_algorithm, k_d, rnd + bytes(8))):
            raise ChipFailure(
                "SSSE INTERNAL AUTHENTICATE", "the card's answer does not verify (wrong IRK)"
            )
        challenge = ok(
            (yield CommandAPDU(0x00, 0x84, 0x00, 0x00, le=8).to_bytes()), "GET CHALLENGE"
        )
        size = 16 if plan.ssse_algorithm == "SM4" else 8  # one block: 8 bytes on 3DES cards
        cryptogram = ecb_encrypt(plan.ssse_algorithm, rk, challenge[:size].ljust(size, b"\0"))
        external = CommandAPDU(0x00, 0x82, 0x00, plan.ssse_read_key, cryptogram)
        ok((yield external.to_bytes()), "SSSE EXTERNAL AUTHENTICATE")
    for dgi, value in sorted(dgis.items()):
        sfi = SSSE_FILES.get(dgi >> 8)
        if sfi is None or not 1 <= (dgi & 0xFF) <= 0x20:
            continue
        read = CommandAPDU(0x00, 0xB2, dgi & 0xFF, (sfi << 3) | 4, le=256)
        got = ok((yield read.to_bytes()), f"READ RECORD SFI {sfi:02X} rec {dgi & 0xFF}")
        if got != value:
            raise ChipFailure(
                "SSSE read-back",
                f"SFI {sfi:02X} record {dgi & 0xFF} differs from the personalized bytes",
            )
    checks.append("ssse-records")


def _wrapped(app: CardApp) -> Iterable[tuple[int, bytes]]:
    return ((d, v) for d, v in app.dgis if d in app.secret)


def _unwrap16(keys: KeyStore, kek: str, wrapped: bytes | None) -> bytes:
    if wrapped is None:
        raise ChipFailure("SSSE read-back", "the perso record has no key for card authentication")
    return keys.unwrap(kek, wrapped)[:16]


def verify_pboc(
    card: CardData,
    app: CardApp,
    dgis: dict[int, bytes],
    plan: ChipPlan,
    keys: KeyStore,
    checks: list[str],
) -> Flow[bool]:
    """GPO, READ RECORD of every AFL record (each must equal its personalized bytes), and a
    GENERATE AC whose ARQC must verify: its input is :func:`cardperso.layouts.pboc_ac.ac_input`
    and its session key the one the card's 9F10 names (:func:`~cardperso.layouts.pboc_ac.
    session_method`), as the card and the issuer host compute them."""
    fci = yield from select(app.aid, "SELECT PBOC")
    pdol = tlv.find(tlv.parse(fci), 0x9F38)
    pdol_len = sum(length for _, length in tlv.parse_dol(pdol.value if pdol else b""))
    aip, afl = yield from gpo(bytes(pdol_len))
    records = yield from read_afl(afl)
    cdol1 = b""
    for key, got in records.items():
        want = dgis.get(key)
        if want is not None and got != want:
            raise ChipFailure(
                "PBOC read-back",
                f"SFI {key >> 8} record {key & 0xFF} differs from the personalized bytes",
            )
        found = tlv.find(tlv.parse(got), 0x8C)
        if found is not None:
            cdol1 = found.value
    checks.append("pboc-records")
    if not plan.verify_ac or not plan.imk_ac:
        return False
    cdol_data = bytes(sum(length for _, length in tlv.parse_dol(cdol1)))
    answer = yield from generate_ac("ARQC", cdol_data)
    written = dgis.get(0x9200)  # the personalized 9F10: the card must name the same DKI and CVN
    if written is not None and answer.iad[:3] != written[:3]:
        raise ChipFailure(
            "GENERATE AC", "the card's 9F10 does not name the personalized DKI and CVN"
        )
    try:
        data = pboc_ac.ac_input(
            answer.iad, dol_values(cdol1, cdol_data), cdol_data, aip, answer.atc
        )
    except DataError as exc:
        raise ChipFailure("GENERATE AC", f"no cryptogram input: {exc.reason}") from None
    session: SessionKeyMethod = "pboc" if pboc_ac.session_method(answer.iad) == "pboc" else "common"
    try:
        keys.verify_arqc(
            plan.imk_ac, (card.pan, card.psn), answer.atc, data, answer.ac, session=session
        )
    except SecurityError:
        raise ChipFailure(
            "GENERATE AC", "ARQC does not verify with the issuer master key"
        ) from None
    checks.append("arqc")
    return True
