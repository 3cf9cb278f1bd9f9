"""A terminal kernel for ``cardperso bank verify``: offline data authentication from a CAPK file,
the cryptogram checked by the issuer host, one reported step per check. Sans-IO: a flow of
:mod:`cardperso.chip.transport` over ``transmit(apdu) -> response``.

How this works
--------------
The kernel does what an EMV / PBOC terminal does (EMV 4.3 Book 3 10.3, Book 2 5-6), then
what the issuer host does with the ARQC, and reports every check as a :class:`Step` (``ok`` or
failed with the reason: a :class:`~cardperso.layouts.emv_cert.CertificateError` names the
failed check). A failed step does not stop the run: the report shows every claim that holds
and every one that does not.

1. selection (PSE / PPSE / AID, :func:`cardperso.bank.terminal.select`), GET PROCESSING
   OPTIONS and every AFL record;
2. the AIP's claims (byte 1: b7 SDA, b6 DDA, b1 CDA). For each claim the card must carry
   what it needs: 8F and the CA public key of the CAPK file (RID = the AID's first 5 bytes),
   the issuer certificate 90/92/9F32 recovered with it, the static data to be authenticated
   (the AFL's ODA records, then the values 9F4A names: 82), then
   * SDA: 93 verified with the issuer key;
   * DDA: the ICC certificate 9F46/9F48/9F47 (its hash covers the static data), then INTERNAL
     AUTHENTICATE with the DDOL (9F49, else the default ``9F3704``) and 9F4B verified;
   * CDA: the first GENERATE AC asks for a CDA signature (P1 b5); 9F4B is verified with the
     ICC key, its CID and transaction data hash checked, and the AC taken from inside it;
3. 9F10 decoded in PBOC's layout; the ARQC sent to the issuer host (its CVN picks PBOC's
   session key and data), EXTERNAL AUTHENTICATE with the ARPC, the second GENERATE AC;
4. GET DATA of the card risk-management objects a PBOC terminal or test tool reads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cardperso.bank.host import AuthRequest, IssuerHost
from cardperso.bank.qpboc import ContactlessResult
from cardperso.bank.terminal import AppSelection, CardSession, TerminalData, gpo_and_records, select
from cardperso.chip.gp import ok
from cardperso.chip.pboc_flows import CID_NAMES, dol_values, generate_ac, internal_authenticate
from cardperso.chip.transport import Flow
from cardperso.codec import tlv
from cardperso.codec.apdu import CommandAPDU, ResponseAPDU
from cardperso.crypto import random_bytes
from cardperso.errors import CardError, DataError, DecodeError, SecurityError
from cardperso.layouts import emv_cert as ec
from cardperso.layouts import pboc_ac

__all__ = [
    "CRM_TAGS",
    "KernelReport",
    "Step",
    "TerminalCaps",
    "check_fdda",
    "load_capks",
    "verify_kernel",
]

#: GET DATA objects checked after the transaction (pboc-conformance.md section 3: ATC, last
#: online ATC, PIN tries, log format, CRM limits, e-cash balance and limits).
CRM_TAGS: tuple[int, ...] = (
    0x9F36, 0x9F13, 0x9F17, 0x9F4F, 0x9F51, 0x9F52, 0x9F53, 0x9F54, 0x9F56, 0x9F57, 0x9F58,
    0x9F59, 0x9F5C, 0x9F79, 0x9F77, 0x9F78, 0x9F6D,
)  # fmt: skip

#: The default DDOL of EMV Book 3 10.3 (when the card has no 9F49): the unpredictable number.
DEFAULT_DDOL = bytes.fromhex("9F3704")

_P1_CDA = 0x10

#: The RID of the PBOC applications (a qPBOC result does not carry the AID).
PBOC_RID = bytes.fromhex("A000000333")


@dataclass(frozen=True, slots=True)
class Step:
    """One check: its name, whether it held, and what was found (never personal data)."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAILED'} {self.name}: {self.detail}"


@dataclass(frozen=True, slots=True)
class KernelReport:
    pan_masked: str
    aid: bytes
    via: str
    steps: tuple[Step, ...]

    @property
    def passed(self) -> bool:
        return all(s.ok for s in self.steps)


@dataclass(frozen=True, slots=True)
class TerminalCaps:
    """The offline authentication methods the terminal supports (Book 3 10.3 picks one; this
    kernel checks every method the card claims that the terminal supports)."""

    sda: bool = True
    dda: bool = True
    cda: bool = True


def load_capks(text: str, where: str = "CAPK file") -> dict[tuple[bytes, int], ec.PublicKey]:
    """The CA public keys of an ``export-capk`` file, by (RID, index); bad entries raise
    :class:`DataError` naming the entry and the field."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise DataError(f"{where}: not JSON") from None
    if not isinstance(doc, list):
        raise DataError(f"{where}: a JSON list of CA public keys is expected")
    out: dict[tuple[bytes, int], ec.PublicKey] = {}
    for n, entry in enumerate(doc, 1):
        if not isinstance(entry, dict):
            raise DataError("not an object", record=f"{where} entry {n}")
        values = {}
        for name, size in (("rid", 5), ("index", 1), ("modulus", None), ("exponent", None)):
            text_value = entry.get(name)
            try:
                values[name] = bytes.fromhex(text_value if isinstance(text_value, str) else "")
            except ValueError:
                values[name] = b""
            if not values[name] or (size is not None and len(values[name]) != size):
                raise DataError("missing or not hex of the right length",
                                field=name, record=f"{where} entry {n}")  # fmt: skip
        key = (values["rid"], values["index"][0])
        out[key] = ec.PublicKey(values["modulus"], int.from_bytes(values["exponent"], "big"))
    return out


def _record_tags(records: Mapping[int, bytes]) -> dict[int, bytes]:
    """Every primitive object of the records (the first one of a tag wins)."""
    out: dict[int, bytes] = {}
    for data in records.values():
        try:
            items = tlv.parse(data)
        except DecodeError:
            continue

        def walk(objs: tuple[tlv.Tlv, ...] | list[tlv.Tlv]) -> None:
            for t in objs:
                if t.children is not None:
                    walk(t.children)
                else:
                    out.setdefault(t.tag, t.value)

        walk(items)
    return out


def _oda_records(afl: bytes, records: Mapping[int, bytes]) -> list[tuple[int, bytes]]:
    """(SFI, record) of the records the AFL marks for offline data authentication, in order."""
    out = []
    for i in range(0, len(afl) - 3, 4):
        sfi, first, count = afl[i] >> 3, afl[i + 1], afl[i + 3]
        for rec in range(first, first + count):
            out.append((sfi, records.get(sfi << 8 | rec, b"")))
    return out


def _expiry(key: ec.PublicKey) -> str:
    text = key.expiry.hex()
    return f"{text[:2]}/{text[2:]}" if len(text) == 4 else "?"


@dataclass
class _Run:
    """What one kernel run learnt, and its steps."""

    capks: Mapping[tuple[bytes, int], ec.PublicKey]
    caps: TerminalCaps
    today: dt.date
    steps: list[Step] = dataclasses.field(default_factory=list)
    icc: ec.PublicKey | None = None
    cda: bool = False

    def step(self, name: str, held: bool, detail: str) -> bool:
        self.steps.append(Step(name, held, detail))
        return held

    def attempt(self, name: str, what: Callable[[], str]) -> bool:
        try:
            return self.step(name, True, what())
        except ec.CertificateError as exc:
            return self.step(name, False, str(exc))
        except DataError as exc:
            return self.step(name, False, f"malformed: {exc}")


def _claims(run: _Run, aip: bytes) -> tuple[bool, bool, bool]:
    """The AIP's claims (SDA, DDA, CDA), reported, then those the terminal supports."""
    sda, dda, cda = (bool(aip and aip[0] & bit) for bit in (0x40, 0x20, 0x01))
    claims = [n for n, c in (("SDA", sda), ("DDA", dda), ("CDA", cda)) if c]
    run.step("aip", True, f"{aip.hex().upper()}: the card claims {', '.join(claims) or 'no ODA'}")
    return sda and run.caps.sda, dda and run.caps.dda, cda and run.caps.cda


def _oda(run: _Run, sel: AppSelection, session: CardSession, term: TerminalData) -> Flow[None]:
    """Step 2 of the module docstring."""
    tags = _record_tags(session.records)
    sda, dda, cda = _claims(run, session.aip)
    if not (sda or dda or cda):
        return
    oda_records = _oda_records(session.afl, session.records)
    run.icc = _chain(run, sel.aid[:5], tags, session.aip, oda_records, sda=sda, icc=dda or cda)
    if run.icc is None:
        return
    run.cda = cda
    if dda:
        ddol = tags.get(0x9F49) or DEFAULT_DDOL
        ddol_data = term.dol_data(ddol)
        try:
            sdad = yield from internal_authenticate(ddol_data)
        except CardError as exc:
            run.step("dda", False, str(exc))
            return
        icc_key = run.icc
        run.attempt("dda", lambda: "INTERNAL AUTHENTICATE signature verified, dynamic number "
                    f"of {ec.verify_sdad(icc_key, sdad, ddol_data)[0]} bytes")  # fmt: skip


def _chain(
    run: _Run, rid: bytes, tags: Mapping[int, bytes], aip: bytes,
    oda_records: list[tuple[int, bytes]], *, sda: bool, icc: bool,
) -> ec.PublicKey | None:  # fmt: skip
    """The CA key, the issuer certificate, the static data, SDA when asked, and the ICC
    certificate when asked (then its key is returned); each a step."""
    pan = tags.get(0x5A, b"") or _track2_pan(tags.get(0x57, b""))
    index = tags.get(0x8F, b"")
    if len(index) != 1:
        run.step("ca public key", False, "the card has no CA public key index (8F)")
        return None
    capk = run.capks.get((rid, index[0]))
    if not run.step("ca public key", capk is not None,
                    f"{rid.hex().upper()} index {index.hex().upper()}"
                    + ("" if capk is not None else ": not in the CAPK file")):  # fmt: skip
        return None
    assert capk is not None
    holder: dict[str, ec.PublicKey | bytes] = {}

    def issuer() -> str:
        if 0x90 not in tags or 0x9F32 not in tags:
            raise ec.CertificateError("issuer certificate", "presence", "90 or 9F32 missing")
        key = ec.recover_issuer_key(capk, tags[0x90], tags.get(0x92, b""), tags[0x9F32],
                                    pan=pan, today=run.today)  # fmt: skip
        holder["issuer"] = key
        return f"{len(key.modulus) * 8}-bit issuer key, expires {_expiry(key)}"

    if not run.attempt("issuer certificate", issuer):
        return None

    def static() -> str:
        records = oda_records
        data = ec.static_data(records, tags.get(0x9F4A, b""), {0x82: aip})
        holder["static"] = data
        aip_note = " + AIP (9F4A)" if tags.get(0x9F4A) else ""
        return f"{len(records)} records{aip_note}, {len(data)} bytes"

    if not run.attempt("static data", static):
        return None
    issuer_key, static_bytes = holder["issuer"], holder["static"]
    assert isinstance(issuer_key, ec.PublicKey) and isinstance(static_bytes, bytes)
    if sda:
        run.attempt(
            "sda",
            lambda: (
                "93 verified, DAC "
                + ec.verify_ssad(issuer_key, _need(tags, 0x93, "93"), static_bytes).hex()
            ),
        )
    if not icc:
        return None
    got: list[ec.PublicKey] = []

    def icc_cert() -> str:
        key = ec.recover_icc_key(issuer_key, _need(tags, 0x9F46, "9F46"),
                                 tags.get(0x9F48, b""), _need(tags, 0x9F47, "9F47"),
                                 pan=pan, static=static_bytes, today=run.today)  # fmt: skip
        got.append(key)
        return f"{len(key.modulus) * 8}-bit ICC key, expires {_expiry(key)}"

    return got[0] if run.attempt("icc certificate", icc_cert) else None


def _track2_pan(track2: bytes) -> bytes:
    digits = track2.hex().upper().split("D", 1)[0]
    return bytes.fromhex(digits + "F" * (len(digits) % 2))


def check_fdda(
    capks: Mapping[tuple[bytes, int], ec.PublicKey],
    result: ContactlessResult,
    *,
    rid: bytes = PBOC_RID,
    today: dt.date | None = None,
) -> tuple[Step, ...]:
    """The kernel's checks of a qPBOC purchase (:func:`cardperso.bank.qpboc.qpboc_purchase`):
    the AIP of the GPO answer, the certificates from the records of its AFL, and fDDA version
    01 (JR/T 0025.12 annex B: 9F4B over 9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69 of this purchase). fDDA
    is an offline approval's: an online or declined purchase has none to check."""
    run = _Run(capks, TerminalCaps(), today or dt.datetime.now(dt.UTC).date())
    answer = result.answer
    aip = answer.get(0x82, b"")
    _, dda, _ = _claims(run, aip)
    if result.cid != "TC":
        run.step("fdda", True, f"the card answered {result.cid}: no offline approval to check")
        return tuple(run.steps)
    tags = _record_tags(result.records)
    # 9F4B (and 9F69) ride in the GPO answer, or for an ICC key above 1024 bits in the
    # virtual record SFI 6 record 1 of the qPBOC AFL (pboc-conformance.md section 5)
    sdad = answer.get(0x9F4B) or tags.get(0x9F4B)
    card_auth = answer.get(0x9F69) or tags.get(0x9F69)
    if sdad is None:
        run.step("fdda", not dda, "no 9F4B in the GPO answer or the records"
                 + (" although the AIP claims DDA" if dda else ""))  # fmt: skip
        return tuple(run.steps)
    for tag in (0x57, 0x5F34):
        if tag in answer:
            tags.setdefault(tag, answer[tag])
    oda_records = _oda_records(answer.get(0x94, b""), result.records)
    icc = _chain(run, rid, tags, aip, oda_records, sda=False, icc=True)
    if icc is None:
        return tuple(run.steps)
    values = dol_values(result.pdol, result.pdol_data)
    un, amount, currency = (values.get(t, b"") for t in (0x9F37, 0x9F02, 0x5F2A))
    if card_auth is None:  # fDDA version 00: over 9F37 alone
        data, version = un, "9F37 (fDDA 00)"
    else:
        data = ec.fdda_terminal_data(un, amount, currency, card_auth)
        version = "9F37, 9F02, 5F2A and 9F69 (fDDA 01)"
    where = "GPO answer" if 0x9F4B in answer else "record"
    run.attempt("fdda", lambda: f"9F4B ({where}) verified over {version}, dynamic number of "
                f"{ec.verify_sdad(icc, sdad, data)[0]} bytes")  # fmt: skip
    return tuple(run.steps)


def _need(tags: Mapping[int, bytes], tag: int, name: str) -> bytes:
    if tag not in tags:
        raise ec.CertificateError(name, "presence", f"the card has no {name}")
    return tags[tag]


def _first_ac(run: _Run, session: CardSession, pdol_data: bytes, cdol_data: bytes) -> Flow[
    tuple[bytes, bytes, bytes, str] | None
]:  # fmt: skip
    """First GENERATE AC asking for an ARQC (with a CDA signature when the run does CDA):
    (ATC, ARQC, 9F10, CID name), or ``None`` when no cryptogram can be had."""
    if not run.cda:
        answer = yield from generate_ac("ARQC", cdol_data)
        return answer.atc, answer.ac, answer.iad, answer.cid
    raw = yield CommandAPDU(0x80, 0xAE, 0x80 | _P1_CDA, 0x00, cdol_data, le=256).to_bytes()
    items = tlv.parse(ok(raw, "GENERATE AC (ARQC, CDA)"))
    inner = items[0].value if items and items[0].tag == 0x77 else b""
    values = {t.tag: t.value for t in tlv.parse(inner)}
    cid, atc, iad = values.get(0x9F27, b""), values.get(0x9F36, b""), values.get(0x9F10, b"")
    un = dol_values(session.cdol1, cdol_data).get(0x9F37, b"")
    assert run.icc is not None
    icc = run.icc
    got: list[ec.CdaData] = []

    def check() -> str:
        if not cid or 0x9F4B not in values:
            raise ec.CertificateError("CDA", "presence", "no 9F27 or 9F4B in the answer")
        got.append(ec.verify_cda(icc, values[0x9F4B], un=un, cid=cid[0], pdol_data=pdol_data,
                                 cdol_data=cdol_data, response=inner))  # fmt: skip
        return f"GENERATE AC signature verified ({CID_NAMES.get(cid[0] & 0xC0, '?')})"

    if not run.attempt("cda", check):
        # no valid signature; an AC in clear (a card that ignored P1 b5) still goes online
        ac = values.get(0x9F26)
        return None if ac is None or not cid else (atc, ac, iad, CID_NAMES.get(cid[0] & 0xC0, "?"))
    return atc, got[0].ac, iad, CID_NAMES.get(cid[0] & 0xC0, "?")


def verify_kernel(
    capks: Mapping[tuple[bytes, int], ec.PublicKey],
    host: IssuerHost,
    *,
    prefer: str = "PSE",
    caps: TerminalCaps | None = None,
    term: TerminalData | None = None,
    today: dt.date | None = None,
) -> Flow[KernelReport]:
    """Run the kernel (module docstring) and return every step."""
    today = today or dt.datetime.now(dt.UTC).date()
    run = _Run(capks, caps or TerminalCaps(), today)
    term = term or TerminalData(amount=0)
    if term.unpredictable is None:  # one 9F37 for the PDOL, DDOL and CDOL data of this run
        term = dataclasses.replace(term, unpredictable=random_bytes(4))
    sel = yield from select(prefer)
    run.step("select", True, f"AID {sel.aid.hex().upper()} via {sel.via}")
    pdol_data = term.dol_data(sel.pdol)
    session = yield from gpo_and_records(sel, term)
    run.step("records", True, f"AFL {session.afl.hex().upper()}: {len(session.records)} records")
    yield from _oda(run, sel, session, term)
    cdol_data = term.dol_data(session.cdol1)
    try:
        first = yield from _first_ac(run, session, pdol_data, cdol_data)
    except CardError as exc:  # the card refused GENERATE AC: reported, the run goes on
        run.step("generate ac", False, str(exc))
        first = None
    if first is not None:
        yield from _online(run, host, session, term, cdol_data, first)
    yield from _crm(run)
    return KernelReport(session.pan_masked, sel.aid, sel.via, tuple(run.steps))


def _online(
    run: _Run,
    host: IssuerHost,
    session: CardSession,
    term: TerminalData,
    cdol_data: bytes,
    first: tuple[bytes, bytes, bytes, str],
) -> Flow[None]:
    atc, arqc, iad, cid = first
    try:
        layout = pboc_ac.IAD.decode(iad)
        idd = "" if layout.idd is None else f", issuer-discretionary {len(layout.idd)} bytes"
        run.step("9f10", True, f"CVN {layout.cvn:02X}, DKI {layout.dki:02X}, algorithm "
                 f"{layout.algorithm:02X}{idd}")  # fmt: skip
    except DataError as exc:
        run.step("9f10", False, f"not in PBOC's layout: {exc}")
    if cid != "ARQC":
        run.step("arqc", False, f"the card answered {cid}, not an ARQC")
        return
    second_dol = session.cdol2 or session.cdol1
    try:
        req = AuthRequest.from_card(session.pan, session.psn, atc=atc, arqc=arqc, iad=iad,
                                    aip=session.aip, cdol=session.cdol1, cdol_data=cdol_data)  # fmt: skip
        answer = host.authorize(req)
    except (SecurityError, DataError) as exc:
        run.step("arqc", False, f"the issuer host refused it: {exc}")
        yield from generate_ac("AAC", term.dol_data(second_dol, b"Z3"))
        return
    run.step("arqc", True, f"verified by the issuer host ({host.session(req)} session key, "
             f"ATC {int.from_bytes(atc, 'big')})")  # fmt: skip
    raw = yield CommandAPDU(0x00, 0x82, 0x00, 0x00, answer.external_authenticate_data).to_bytes()
    sw = ResponseAPDU.parse(raw).sw
    run.step("issuer authentication", sw == 0x9000, f"EXTERNAL AUTHENTICATE answered {sw:04X}")
    second = yield from generate_ac("TC", term.dol_data(second_dol, answer.arc))
    run.step("second generate ac", second.cid == "TC", f"the card answered {second.cid}")


def _crm(run: _Run) -> Flow[None]:
    missing = []
    for tag in CRM_TAGS:
        raw = yield CommandAPDU(0x80, 0xCA, tag >> 8, tag & 0xFF, le=256).to_bytes()
        resp = ResponseAPDU.parse(raw)
        found = None
        if resp.sw == 0x9000:
            try:
                found = tlv.find(tlv.parse(resp.data), tag)
            except DecodeError:
                found = None
        if found is None:
            missing.append(f"{tag:04X} ({resp.sw:04X})")
    run.step("crm get data", not missing,
             f"{len(CRM_TAGS) - len(missing)} of {len(CRM_TAGS)} objects answer"
             + (f"; missing {', '.join(missing)}" if missing else ""))  # fmt: skip
