"""The PBOC 3.0 debit application with electronic cash, and its PSE / PPSE directories.

How this works
--------------
Personalized DGIs (docs/card-dgi-map.md) are kept as they arrived in
:class:`~cardperso.card.state.PbocData`; counters (ATC, PIN tries, EC balance and limits) are
separate fields so that GET DATA and issuer scripts change them in one place. One transaction
is volatile state of the selection: SELECT -> GET PROCESSING OPTIONS (path chosen, ATC + 1)
-> READ RECORD ... -> GENERATE AC -> EXTERNAL AUTHENTICATE (ARPC method 1) -> issuer script
PUT DATA (MAC under the SMI session key) -> second GENERATE AC. All cryptography is
:mod:`cardperso.crypto.emv`.

The cryptogram follows the CVN of the personalized 9F10 (:mod:`cardperso.layouts.pboc_ac`, the
one definition the issuer host uses too): for PBOC's CVN 01 the session keys are PBOC's
(``00x6 ‖ ATC`` / ``00x6 ‖ ATC⊕FFFF``) and the AC covers the minimum data set ‖ AIP ‖ ATC ‖ CVR;
9F10 carries the EC balance with a MAC under the SMI session key, which the issuer host trusts
instead of a 9F79 the terminal read. Card risk-management data (0D01 / 0E01) answer GET DATA,
and every transaction that ends (TC or AAC) writes a record of the transaction log named by the
FCI's 9F4D in the 9F4F format, newest first, for READ RECORD.
"""

from __future__ import annotations

from cardperso.card import pboc_crm
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
from cardperso.card.perso import Personalizer, plaintext
from cardperso.card.state import CardState, PbocData
from cardperso.codec import tlv
from cardperso.crypto import emv
from cardperso.crypto import primitives as cp
from cardperso.errors import DataError, DecodeError, MacMismatch
from cardperso.layouts import pboc_ac

#: EC data objects changed by issuer scripts (n12) and the PbocData field holding each.
EC_FIELDS = {
    0x9F79: "ec_balance",
    0x9F77: "ec_balance_limit",
    0x9F78: "ec_single_limit",
    0x9F6D: "ec_reset_threshold",
}
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
            parse_tlvs(value)
            d.dgis[key] = value
        elif dgi == 0x9200:
            need(not encrypted, SW_WRONG_DATA)
            if value[:2] == b"\x9f\x10":
                item = tlv.find(parse_tlvs(value), 0x9F10)
                need(item is not None, SW_WRONG_DATA)
                assert item is not None
                value = item.value
            if value[:1] == b"\x07":
                try:  # PBOC's layout must be whole (a length byte never promises missing bytes)
                    iad = pboc_ac.IAD.decode(value)
                except DecodeError:
                    raise Sw(SW_WRONG_DATA) from None
                need(iad.algorithm == pboc_ac.ALGORITHM_3DES, SW_WRONG_DATA)  # no SM4 AC here
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
        elif 0x8201 <= dgi <= 0x8205 or dgi in (0x8020, 0x8030):
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
        check_ec_consistency(self.nv.pboc)


class PbocApplet(Applet):
    kind = "pboc"

    def __init__(self, nv: CardState) -> None:
        super().__init__(nv)
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
        self.txn: pboc_crm.Txn | None = None
        self.crm_cvr = 0
        self.unable_online = False

    # -- selection -----------------------------------------------------------------------------

    def fci_proprietary(self) -> bytes:
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

    def _records(self) -> dict[str, bytes]:
        return {k: v for k, v in self.data.dgis.items() if 0x01 <= int(k[:2], 16) <= 0x0A}

    def _read_record(self, cmd: Command) -> bytes:
        need(not cmd.data, SW_WRONG_LENGTH)
        need(cmd.p2 & 0x07 == 0x04 and cmd.p1 != 0, SW_WRONG_P1P2)
        sfi = cmd.p2 >> 3
        log = self._log_entry()
        need(1 <= sfi <= 0x0A or (log is not None and sfi == log[0]), SW_RECORD_NOT_FOUND)
        record = self.data.dgis.get(f"{sfi:02X}{cmd.p1:02X}")
        need(record is not None, SW_RECORD_NOT_FOUND)
        assert record is not None
        return record

    def _internal_value(self, tag: int) -> bytes | None:
        for key in ("0D01", "0E01"):
            raw = self.data.dgis.get(key)
            if raw:
                found = tlv.find(parse_tlvs(raw), tag)
                if found is not None:
                    return found.value
        return None

    def _get_data(self, cmd: Command) -> bytes:
        need(not cmd.data, SW_WRONG_LENGTH)
        tag = cmd.p1 << 8 | cmd.p2
        d = self.data
        value: bytes | None
        if tag in EC_FIELDS:
            value = n12(getattr(d, EC_FIELDS[tag]))
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
        """A data object of the card's internal data (0D01 / 0E01), else of its records."""
        value = self._internal_value(tag)
        if value is None:
            for record in self._records().values():
                found = tlv.find(parse_tlvs(record), tag)
                if found is not None:
                    return found.value
        return value

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

    def _iad(self, decision: str, atc: bytes) -> bytes:
        """9F10 of this answer: the personalized one with the CVR filled in, and for PBOC's
        layout with an EC-balance part, the balance (low 10 digits) and its MAC."""
        d = self.data
        iad = d.dgis.get("9200", b"")
        if len(iad) < 7 or iad[3] != 0x03:
            return iad
        iad = iad[:3] + self._cvr(decision) + iad[7:]
        if len(iad) == 19 and iad[0] == 0x07 and iad[8:10] == b"\x0a\x01" and d.smi_key:
            balance = bytes.fromhex(f"{d.ec_balance % 10**10:010d}")
            sk = emv.session_key(self._session(), d.smi_key, atc)
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
        check_ec_consistency(d)
        return b""
