"""The PBOC 3.0 debit application with electronic cash, and its PSE / PPSE directories.

How this works
--------------
Personalized DGIs (docs/card-dgi-map.md) are kept as they arrived in
:class:`~cardperso.card.state.PbocData`; counters (ATC, PIN tries, EC balance and limits) are
separate fields so that GET DATA and issuer scripts change them in one place. One transaction
is volatile state of the selection: SELECT -> GET PROCESSING OPTIONS (path chosen, ATC + 1)
-> READ RECORD ... -> GENERATE AC -> EXTERNAL AUTHENTICATE (ARPC method 1) -> issuer script
PUT DATA (MAC under the SMI session key) -> second GENERATE AC. All cryptography is
:mod:`cardperso.crypto.emv` (and :mod:`cardperso.crypto.rsa` for offline authentication).

The application is one command table (:meth:`PbocApplet.process`) over these modules:
personalization :mod:`cardperso.card.pboc_perso`; card risk management at GENERATE AC
:mod:`cardperso.card.pboc_crm`; the contactless quick path decided at GPO
:mod:`cardperso.card.qpboc` (in a contactless field, with a TTQ asking it); DDA (INTERNAL
AUTHENTICATE), CDA (GENERATE AC P1 b5) and fDDA with the ICC key of DGIs 8201-8205
:mod:`cardperso.card.pboc_oda`.

The cryptogram follows the CVN of the personalized 9F10 (:mod:`cardperso.layouts.pboc_ac`, the
one definition the issuer host uses too): for PBOC's CVN 01 the session keys are PBOC's
(``00x6 ‖ ATC`` / ``00x6 ‖ ATC⊕FFFF``) and the AC covers the minimum data set ‖ AIP ‖ ATC ‖ CVR;
9F10 carries the EC balance with a MAC under the SMI session key, which the issuer host trusts
instead of a 9F79 the terminal read. Card risk-management data (0D01 / 0E01) answer GET DATA,
and every transaction that ends (TC or AAC) writes a record of the transaction log named by the
FCI's 9F4D in the 9F4F format, newest first, for READ RECORD.
"""

from __future__ import annotations

from cardperso.card import pboc_crm, pboc_oda, qpboc
from cardperso.card.applet import (
    SW_AUTH_BLOCKED,
    SW_CONDITIONS,
    SW_INS_NOT_SUPPORTED,
    SW_RECORD_NOT_FOUND,
    SW_REF_NOT_FOUND,
    SW_SECURITY,
    SW_SM_INCORRECT,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    Applet,
    Command,
    Reply,
    Sw,
    need,
)
from cardperso.card.pboc_perso import (
    EC_FIELDS,
    PbocPersonalizer,
    check_ec_consistency,
    decode_n,
    dol_values,
    internal_value,
    lookup,
    n12,
    parse_dol,
    parse_tlvs,
    records,
)
from cardperso.card.perso import Personalizer
from cardperso.card.state import CardState, PbocData
from cardperso.codec import tlv
from cardperso.crypto import emv
from cardperso.crypto import primitives as cp
from cardperso.errors import DataError, DecodeError, MacMismatch
from cardperso.layouts import pboc_ac

CID = {"AAC": 0x00, "TC": 0x40, "ARQC": 0x80}

#: Data objects of 0D01 / 0E01 that GET DATA returns as personalized (JR/T 0025.5 / .13; the
#: probe list of pboc-conformance.md section 3): currency, CRM limits and actions, log formats
#: and entries, EC issuer authorisation code, card additional processes, CTQ, offline amounts.
GET_DATA_STATIC = frozenset(
    {
        0x9F4D, 0x9F4F, 0xDF4D, 0xDF4F, 0x9F51, 0x9F52, 0x9F53, 0x9F54, 0x9F56, 0x9F57,
        0x9F58, 0x9F59, 0x9F5C, 0x9F5D, 0x9F68, 0x9F6B, 0x9F6C, 0x9F72, 0x9F73, 0x9F74,
        0x9F75, 0x9F76,
    }
)  # fmt: skip

#: SFIs a transaction log may use (above the personalized record files 1-10).
LOG_SFIS = range(0x0B, 0x1F)


class PbocApplet(Applet):
    kind = "pboc"

    def __init__(self, nv: CardState) -> None:
        super().__init__(nv)
        #: the card sits in a contactless field (the interface, not the selection: it survives
        #: deselection and rollback; set through VirtualCard.contactless)
        self.contactless = False
        #: signs fDDA on the qPBOC path (cardperso.card.pboc_oda installs it)
        self.fdda: qpboc.FddaSigner | None = pboc_oda.fdda
        self.deselect()

    @property
    def data(self) -> PbocData:
        return self.nv.pboc

    def personalizer(self) -> Personalizer:
        return PbocPersonalizer(self.nv)

    def deselect(self) -> None:
        self.aid = b""
        self.path: str | None = None
        self.aip = b""
        self.ac_count = 0
        self.first_ac: str | None = None
        self.arqc: bytes | None = None
        self.issuer_auth: bool | None = None
        self.scripts: set[bytes] = set()
        self.script_failed = False
        self.pin_verified = False
        self.pin_tried = False
        self.pdol_values: dict[int, bytes] = {}
        self.pdol_data = self.cdol1_data = self.cdol2_data = b""
        self.fdda_record: bytes | None = None
        self.txn: pboc_crm.Txn | None = None
        self.crm_cvr = 0
        self.unable_online = False

    # -- selection -----------------------------------------------------------------------------

    def fci_proprietary(self) -> bytes:
        """The FCI proprietary template: the contactless one (9103) in a contactless field
        when personalized, else the contact one (9102)."""
        if self.contactless and "9103" in self.data.dgis:
            return self.data.dgis["9103"]
        return self.data.dgis.get("9102", b"")

    def select(self, cmd: Command, aid: bytes) -> bytes | Reply:
        self.deselect()
        self.aid = aid
        prop = self.fci_proprietary()
        if prop[:1] == b"\x6f":
            return prop
        return tlv.encode(0x6F, tlv.encode(0x84, aid) + tlv.encode(0xA5, prop))

    def process(self, cmd: Command) -> bytes | Reply:
        base = cmd.cla & 0xF0
        if cmd.ins == 0xDA and cmd.cla in (0x04, 0x84):
            return self._put_data(cmd)
        if cmd.cla & 0x0C:
            raise Sw(SW_SECURITY)
        handlers = {
            (0x80, 0xA8): self._gpo,
            (0x00, 0xB2): self._read_record,
            (0x80, 0xCA): self._get_data,
            (0x00, 0xCA): self._get_data,
            (0x00, 0x20): self._verify,
            (0x80, 0xAE): self._generate_ac,
            (0x00, 0x82): self._external_authenticate,
            (0x00, 0x88): self._internal_authenticate,
        }
        handler = handlers.get((base, cmd.ins))
        if handler is None:
            raise Sw(SW_INS_NOT_SUPPORTED)
        return handler(cmd)

    # -- GPO / records / GET DATA --------------------------------------------------------------

    def _gpo(self, cmd: Command) -> bytes:
        need(cmd.p1 == 0 and cmd.p2 == 0, SW_WRONG_P1P2)
        need(self.path is None, SW_CONDITIONS)
        need(len(cmd.data) >= 2 and cmd.data[0] == 0x83, SW_WRONG_DATA)
        need(cmd.data[1] == len(cmd.data) - 2, SW_WRONG_LENGTH)
        pdol_data = cmd.data[2:]
        items = parse_tlvs(self.fci_proprietary())
        pdol_tlv = tlv.find(items, 0x9F38)
        pdol = parse_dol(pdol_tlv.value) if pdol_tlv else []
        values = dol_values(pdol, pdol_data)
        self.pdol_data = pdol_data
        ttq = values.get(0x9F66) if self.contactless else None
        if ttq is not None and qpboc.route(ttq, "9207" in self.data.dgis) == "qpboc":
            return qpboc.gpo(self, values, pdol_data, self.fdda)
        path = "ec" if values.get(0x9F7A) == b"\x01" and "9203" in self.data.dgis else "debit"
        response = self.data.dgis.get("9203" if path == "ec" else "9104")
        need(response is not None, SW_CONDITIONS)
        assert response is not None
        need(self.data.atc < 0xFFFF, SW_CONDITIONS)
        aip = tlv.find(parse_tlvs(response), 0x82)
        need(aip is not None and len(aip.value) == 2, SW_CONDITIONS)
        assert aip is not None
        self.data.atc += 1
        self.path, self.aip = path, aip.value
        self.pdol_values = values
        if response[:1] in (b"\x77", b"\x80"):
            return response
        return tlv.encode(0x77, response)

    def _internal_authenticate(self, cmd: Command) -> bytes:
        return pboc_oda.internal_authenticate(self, cmd)

    def _records(self) -> dict[str, bytes]:
        return records(self.data)

    def _read_record(self, cmd: Command) -> bytes:
        need(not cmd.data, SW_WRONG_LENGTH)
        need(cmd.p2 & 0x07 == 0x04 and cmd.p1 != 0, SW_WRONG_P1P2)
        sfi = cmd.p2 >> 3
        log = self._log_entry()
        need(1 <= sfi <= 0x0A or (log is not None and sfi == log[0]), SW_RECORD_NOT_FOUND)
        record = self.data.dgis.get(f"{sfi:02X}{cmd.p1:02X}")
        if record is None and (sfi, cmd.p1) == qpboc.FDDA_RECORD:
            record = self.fdda_record  # fDDA of a key above 1024 bits (cardperso.card.pboc_oda)
        need(record is not None, SW_RECORD_NOT_FOUND)
        assert record is not None
        return record

    def _internal_value(self, tag: int) -> bytes | None:
        return internal_value(self.data, tag)

    def _get_data(self, cmd: Command) -> bytes:
        need(not cmd.data, SW_WRONG_LENGTH)
        tag = cmd.p1 << 8 | cmd.p2
        d = self.data
        value: bytes | None
        if tag in EC_FIELDS:
            value = n12(getattr(d, EC_FIELDS[tag]))
        elif tag == 0x9F5D:  # available offline spending amount: the e-cash balance
            value = n12(d.ec_balance)
        elif tag == 0x9F36:
            value = d.atc.to_bytes(2, "big")
        elif tag == 0x9F13:
            value = d.last_online_atc.to_bytes(2, "big")
        elif tag == 0x9F17:
            need(bool(d.pin_block), SW_REF_NOT_FOUND)
            value = bytes((d.pin_tries_left,))
        elif tag in GET_DATA_STATIC:
            value = self._internal_value(tag)
            if value is None and tag == 0x9F4D:
                log = self._log_entry()
                value = bytes(log) if log is not None else None
        else:
            value = None
        need(value is not None, SW_REF_NOT_FOUND)
        assert value is not None
        return tlv.encode(tag, value)

    # -- cardholder verification ---------------------------------------------------------------

    def _verify(self, cmd: Command) -> bytes | Reply:
        need(cmd.p1 == 0 and cmd.p2 == 0x80, SW_WRONG_P1P2)
        d = self.data
        need(bool(d.pin_block), SW_REF_NOT_FOUND)
        if d.pin_tries_left == 0:
            raise Sw(SW_AUTH_BLOCKED)
        if not cmd.data:
            return Reply(b"", 0x63C0 | d.pin_tries_left)
        need(len(cmd.data) == 8, SW_WRONG_LENGTH)
        self.pin_tried = True
        if cp.equal(cmd.data, d.pin_block):
            d.pin_tries_left = d.pin_try_limit
            self.pin_verified = True
            return b""
        d.pin_tries_left -= 1
        self.pin_verified = False
        return Reply(b"", 0x63C0 | d.pin_tries_left)

    # -- GENERATE AC ---------------------------------------------------------------------------

    def _cdol(self, tag: int) -> list[tuple[int, int]] | None:
        for record in self._records().values():
            found = tlv.find(parse_tlvs(record), tag)
            if found is not None:
                return parse_dol(found.value)
        return None

    def _lookup(self, tag: int) -> bytes | None:
        return lookup(self.data, tag)

    def _decide(self, requested: str, values: dict[int, bytes]) -> str:
        """Card action analysis (:mod:`cardperso.card.pboc_crm` for the debit path)."""
        d = self.data
        txn = pboc_crm.Txn(decode_n(values[0x9F02]) if 0x9F02 in values else 0, values.get(0x5F2A))
        crm = pboc_crm.crm_data(self._lookup)
        if self.ac_count == 0:
            self.txn = txn
            if self.path == "ec":
                if requested != "TC":
                    return requested
                if txn.amount <= d.ec_single_limit and txn.amount <= d.ec_balance:
                    d.ec_balance -= txn.amount
                    return "TC"
                return "AAC"
            decision, self.crm_cvr = pboc_crm.first_ac(d, crm, txn, requested)
            if decision == "TC":
                pboc_crm.count_offline(d, txn, crm)
            d.online_pending = decision == "ARQC"
            return decision
        first = self.txn or txn
        if values.get(0x8A) in pboc_crm.UNABLE_ONLINE_ARCS and self.issuer_auth is None:
            self.unable_online = True
            d.online_pending = False
            approve, bits = pboc_crm.offline_after_unable_online(d, crm, first)
            self.crm_cvr |= bits
            if requested == "TC" and approve:
                pboc_crm.count_offline(d, first, crm)
                return "TC"
            return "AAC"
        decision, bits = pboc_crm.second_ac_online(crm, self.issuer_auth, requested)
        self.crm_cvr |= bits
        pboc_crm.online_done(d, crm, self.issuer_auth, decision == "TC")
        return decision

    def _cvr(self, decision: str) -> bytes:
        """Card verification results (4 bytes, IAD bytes 4-7; VIS/PBOC layout): byte 2 b8-7
        AC type of the 2nd GENERATE AC (00 AAC, 01 TC, 10 not requested), b6-5 of the 1st
        (00 AAC, 01 TC, 10 ARQC), b4 issuer authentication failed, b3 offline PIN performed,
        b2 offline PIN failed; byte 3 b7 PIN try limit exceeded; byte 4 b8-5 issuer script
        commands processed, b4 issuer script failed."""
        code = {"AAC": 0, "TC": 1, "ARQC": 2}
        first = self.first_ac if self.ac_count else decision
        second = code[decision] if self.ac_count else 2
        b2 = second << 6 | code[first or decision] << 4
        if self.issuer_auth is False:
            b2 |= 0x08
        if self.pin_tried:
            b2 |= 0x04 | (0 if self.pin_verified else 0x02)
        if self.unable_online:
            b2 |= pboc_crm.CVR_UNABLE_TO_GO_ONLINE
        b3 = self.crm_cvr
        if self.data.pin_block and self.data.pin_tries_left == 0:
            b3 |= pboc_crm.CVR_PIN_LIMIT_EXCEEDED
        b4 = min(len(self.scripts), 15) << 4 | (0x08 if self.script_failed else 0)
        return bytes((0x03, b2, b3, b4))

    def _generate_ac(self, cmd: Command) -> bytes:
        d = self.data
        need(cmd.p2 == 0x00 and cmd.p1 & 0xC0 != 0xC0 and cmd.p1 & 0x2F == 0, SW_WRONG_P1P2)
        need(self.path is not None and bool(d.ac_key), SW_CONDITIONS)
        need(self.ac_count == 0 or (self.ac_count == 1 and self.first_ac == "ARQC"), SW_CONDITIONS)
        requested = {0x00: "AAC", 0x40: "TC", 0x80: "ARQC"}[cmd.p1 & 0xC0]
        dol = self._cdol(0x8C if self.ac_count == 0 else 0x8D)
        need(bool(cmd.data), SW_WRONG_LENGTH)
        values = dol_values(dol, cmd.data) if dol is not None else {}
        if self.ac_count == 0:
            self.cdol1_data = cmd.data
        else:
            self.cdol2_data = cmd.data
        decision = self._decide(requested, values)
        atc = d.atc.to_bytes(2, "big")
        iad = self._iad(decision, atc)
        try:
            data = pboc_ac.ac_input(iad, values, cmd.data, self.aip, atc)
        except DataError:
            raise Sw(SW_CONDITIONS) from None  # a CDOL without the minimum data set
        sk = emv.session_key(pboc_ac.session_method(iad), d.ac_key, atc)
        ac = emv.application_cryptogram(sk, data)
        if self.ac_count == 0:
            self.first_ac = decision
            if decision == "ARQC":
                self.arqc = ac
        self.ac_count += 1
        if decision != "ARQC":
            self._log({**self.pdol_values, **values, 0x9F36: atc})
        cda = cmd.p1 & pboc_oda.P1_CDA and decision != "AAC"
        if cda and pboc_oda.icc_key(d, self._lookup) is not None:
            return pboc_oda.cda_answer(self, CID[decision], atc, ac, iad, values.get(0x9F37))
        body = (
            tlv.encode(0x9F27, bytes((CID[decision],)))
            + tlv.encode(0x9F36, atc)
            + tlv.encode(0x9F26, ac)
        )
        if iad:
            body += tlv.encode(0x9F10, iad)
        return tlv.encode(0x77, body)

    def _session(self) -> str:
        return pboc_ac.session_method(self.data.dgis.get("9200", b""))

    def _iad(self, decision: str, atc: bytes, base: bytes | None = None) -> bytes:
        """9F10 of this answer: the personalized one (``base``, else DGI 9200) with the CVR
        filled in, and for PBOC's layout with an EC-balance part, the balance (low 10 digits)
        and its MAC."""
        d = self.data
        iad = d.dgis.get("9200", b"") if base is None else base
        if len(iad) < 7 or iad[3] != 0x03:
            return iad
        iad = iad[:3] + self._cvr(decision) + iad[7:]
        if len(iad) == 19 and iad[0] == 0x07 and iad[8:10] == b"\x0a\x01" and d.smi_key:
            balance = bytes.fromhex(f"{d.ec_balance % 10**10:010d}")
            sk = emv.session_key(pboc_ac.session_method(iad), d.smi_key, atc)
            mac = emv.issuer_script_mac(sk, pboc_ac.idd_mac_input(atc, balance))[:4]
            iad = iad[:10] + balance + mac
        return iad

    # -- transaction log -------------------------------------------------------------------------

    def _log_entry(self) -> tuple[int, int] | None:
        """(SFI, number of records) of the transaction log: 9F4D of the FCI's BF0C (or of
        0D01 / 0E01); ``None`` when the card has no log or names a record file 1-10."""
        found = None
        try:
            bf0c = tlv.find(tlv.parse(self.fci_proprietary()), 0xBF0C)
            if bf0c is not None:
                found = tlv.find(tlv.parse(bf0c.value), 0x9F4D)
        except DecodeError:
            return None
        value = found.value if found is not None else self._internal_value(0x9F4D)
        if value is None or len(value) != 2 or value[0] not in LOG_SFIS or not value[1]:
            return None
        return value[0], value[1]

    def _log(self, values: dict[int, bytes]) -> None:
        """Write one log record (9F4F's data, zeros where the terminal gave nothing) as
        record 1 of the log file; older records move down, the oldest falls off."""
        entry, fmt = self._log_entry(), self._internal_value(0x9F4F)
        if entry is None or fmt is None:
            return
        sfi, count = entry
        try:
            dol = parse_dol(fmt)
        except Sw:
            return
        record = b"".join(values.get(t, b"")[:n].rjust(n, b"\0") for t, n in dol)
        dgis = self.data.dgis
        for n in range(count, 1, -1):
            older = dgis.get(f"{sfi:02X}{n - 1:02X}")
            if older is not None:
                dgis[f"{sfi:02X}{n:02X}"] = older
        dgis[f"{sfi:02X}01"] = record

    # -- issuer authentication and scripts ----------------------------------------------------

    def _external_authenticate(self, cmd: Command) -> bytes | Reply:
        need(cmd.p1 == 0 and cmd.p2 == 0, SW_WRONG_P1P2)
        need(len(cmd.data) == 10, SW_WRONG_LENGTH)
        need(self.arqc is not None and self.issuer_auth is None, SW_CONDITIONS)
        assert self.arqc is not None
        d = self.data
        atc = d.atc.to_bytes(2, "big")
        sk = emv.session_key(self._session(), d.ac_key, atc)
        expected = emv.arpc_method1(sk, self.arqc, cmd.data[8:10])
        if not cp.equal(expected, cmd.data[:8]):
            self.issuer_auth = False
            return Reply(b"", 0x6300)
        self.issuer_auth = True
        d.last_online_atc = d.atc
        return b""

    def _put_data(self, cmd: Command) -> bytes:
        tag = cmd.p1 << 8 | cmd.p2
        need(tag in EC_FIELDS, SW_REF_NOT_FOUND)
        need(len(cmd.data) == 10, SW_WRONG_LENGTH)
        need(self.issuer_auth is True and self.arqc is not None, SW_CONDITIONS)
        assert self.arqc is not None
        need(cmd.raw not in self.scripts, SW_CONDITIONS)
        d = self.data
        value, mac = cmd.data[:6], cmd.data[6:]
        atc = d.atc.to_bytes(2, "big")
        sk = emv.session_key(self._session(), d.smi_key, atc)
        mac_input = emv.issuer_script_mac_input(cmd.header, atc, self.arqc, value)
        try:
            emv.verify_issuer_script_mac(sk, mac_input, mac)
        except MacMismatch:
            self.script_failed = True
            raise Sw(SW_SM_INCORRECT) from None
        self.scripts.add(cmd.raw)
        setattr(d, EC_FIELDS[tag], decode_n(value))
        try:
            check_ec_consistency(d)  # e.g. a balance past the card's own limit 9F77
        except Sw:
            self.script_failed = True  # the CVR tells the issuer (the value is rolled back)
            raise
        return b""
