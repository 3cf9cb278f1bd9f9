"""The GlobalPlatform issuer security domain (card manager) of the virtual card.

How this works
--------------
* Secure channel: INITIALIZE UPDATE / EXTERNAL AUTHENTICATE are handed to the CARD side of
  :mod:`cardperso.protocol` (SCP02 i=55 or SCP03 i=70, see :mod:`cardperso.card.channel`);
  this module never computes a cryptogram or a MAC itself. Once authenticated, every command
  to the ISD must carry the protection of the session's security level (else ``6982``, and
  the session is closed, as after any MAC failure).
* The failed-authentication counter lives in non-volatile memory: a failed EXTERNAL
  AUTHENTICATE answers ``6300`` and counts; a successful one resets the count; when the count
  reaches the limit, INITIALIZE UPDATE and EXTERNAL AUTHENTICATE answer ``6983`` for ever
  (the domain is blocked, across power cycles).
* INSTALL, STORE DATA (routed to the application being personalized, see
  docs/card-dgi-map.md), SET STATUS (through the one life-cycle table) and PUT KEY.

Supplementary security domains (GP 2.3 §7.2, delegated management; docs/bank.md)
-------------------------------------------------------------------------------
The same class serves a supplementary security domain (SSD) when built with its AID: its own
key sets, sequence counter and failure count (:attr:`CardState.ssds`), its own applications
(:attr:`Application.domain`). The rules the card enforces:

* the ISD creates an SSD with INSTALL [for install (and make selectable)] from the built-in
  security-domain load file (:data:`SD_PACKAGE` / :data:`SD_MODULE`, privilege byte 1 with
  b8 "security domain"); the SSD starts with **no keys**;
* its first key set arrives through the ISD: INSTALL [for personalization] naming the SSD,
  then PUT KEY in the ISD's session (DEK of the ISD session) is forwarded to the SSD, which
  becomes PERSONALIZED; from then on the ISD can neither add nor replace the SSD's keys
  (INSTALL [for personalization] of a PERSONALIZED SSD answers ``6985``);
* INSTALL [for extradition] (P1 ``10``) by the ISD moves one of its applications to an SSD;
* a domain personalizes (INSTALL [for personalization], STORE DATA), makes selectable and
  SET STATUSes **only its own applications** (``6985`` otherwise); an SSD needs the delegated
  management privilege (``20``) for INSTALL [for install] / [for make selectable], and never
  changes the card's life-cycle;
* PUT KEY in an SSD's own session changes only the SSD's keys.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from cardperso.card import lifecycle
from cardperso.card.applet import (
    SW_AUTH_BLOCKED,
    SW_CONDITIONS,
    SW_INS_NOT_SUPPORTED,
    SW_NOT_FOUND,
    SW_REF_NOT_FOUND,
    SW_SECURITY,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    Applet,
    Command,
    Reply,
    Sw,
    need,
    parse_command,
)
from cardperso.card.channel import CardChannel, kdd_for, open_channel
from cardperso.card.perso import Personalizer
from cardperso.card.state import Application, CardState, KeySet, Package, SecurityDomain
from cardperso.codec import tlv
from cardperso.crypto import primitives as cp
from cardperso.errors import CardPersoError, IllegalTransition
from cardperso.protocol.storedata import StoreDataReceiver, StoreDataRejected

if TYPE_CHECKING:
    from cardperso.card.vcard import VirtualCard

#: GP card recognition data (GP 2.3 H.2): GP 2.3, SCP02 i=55 or SCP03 i=70.
_OID_GP = bytes.fromhex("2A864886FC6B")


def card_recognition_data(scp: str) -> bytes:
    scp_id, i = (0x02, 0x55) if scp == "02" else (0x03, 0x70)
    body = (
        tlv.encode(0x06, _OID_GP + b"\x01")
        + tlv.encode(0x60, tlv.encode(0x06, _OID_GP + b"\x02\x02\x03"))
        + tlv.encode(0x63, tlv.encode(0x06, _OID_GP + b"\x03"))
        + tlv.encode(0x64, tlv.encode(0x06, _OID_GP + b"\x04" + bytes((scp_id, i))))
    )
    return tlv.encode(0x66, tlv.encode(0x73, body))


#: The built-in security-domain load file and module (GP: an SSD is an instance of it).
SD_PACKAGE = bytes.fromhex("A0000001515350")
SD_MODULE = bytes.fromhex("A000000151535041")
#: Privilege bits (GP 2.3 table 6-1): byte 1.
PRIV_SECURITY_DOMAIN = 0x80
PRIV_DELEGATED_MANAGEMENT = 0x20


def key_information(nv: CardState, sd: SecurityDomain | None = None) -> bytes:
    """Key information template E0 (GP 2.3 11.3.3.1): one C0 per key: id, KVN, type, length."""
    sd = sd or nv.isd
    key_type = 0x80 if sd.scp == "02" else 0x88
    entries = b"".join(
        tlv.encode(0xC0, bytes((key_id, ks.kvn, key_type, len(ks.enc))))
        for ks in sd.keys
        for key_id in (1, 2, 3)
    )
    return tlv.encode(0xE0, entries)


class IssuerSecurityDomain(Applet):
    """The issuer security domain, or (``domain_aid`` given) a supplementary one."""

    kind = "isd"

    def __init__(self, nv: CardState, card: VirtualCard, domain_aid: bytes | None = None) -> None:
        super().__init__(nv)
        self.card = card
        self.domain_aid = domain_aid
        self.channel: CardChannel | None = None
        self.perso: Personalizer | None = None
        self._receiver = StoreDataReceiver()
        self._perso_aid = b""
        self._perso_ssd = b""

    @property
    def is_isd(self) -> bool:
        return self.domain_aid is None

    @property
    def sd(self) -> SecurityDomain:
        """This domain's keys and counters (non-volatile)."""
        if self.domain_aid is None:
            return self.nv.isd
        sd = self.nv.ssd(self.domain_aid)
        if sd is None:
            raise Sw(SW_NOT_FOUND)
        return sd

    def _privileges(self) -> bytes:
        if self.domain_aid is None:
            return b"\x9e\xfe\x80"  # the ISD: security domain, card lock/terminate, AM ...
        app = self.nv.app(self.domain_aid)
        return app.privileges if app is not None else b"\x00"

    def _may_manage_content(self) -> bool:
        """INSTALL [for install] / [for make selectable]: the ISD, or DM / AM privileges."""
        priv = self._privileges()
        return (
            self.is_isd
            or bool(priv[0] & PRIV_DELEGATED_MANAGEMENT)
            or (len(priv) > 1 and bool(priv[1] & 0x40))
        )

    def _owns(self, app: Application) -> bool:
        return self.nv.domain_of(app) == self.sd.aid

    # -- selection ---------------------------------------------------------------------------

    def select(self, cmd: Command, aid: bytes) -> bytes | Reply:
        self.deselect()  # (re)selection ends any secure channel session
        prop = tlv.encode(0x9F6E, self.nv.cplc[:2] + self.nv.cplc[12:16]) + tlv.encode(
            0x9F65, b"\xff"
        )
        return tlv.encode(0x6F, tlv.encode(0x84, aid) + tlv.encode(0xA5, prop))

    def deselect(self) -> None:
        self.channel = None
        self.perso = None
        self._receiver = StoreDataReceiver()
        self._perso_ssd = b""

    def _close(self) -> None:
        self.deselect()

    # -- dispatch ----------------------------------------------------------------------------

    def process(self, cmd: Command) -> bytes | Reply:
        if cmd.ins == 0x50 and cmd.cla & 0xFC == 0x80:
            return self._initialize_update(cmd)
        if cmd.ins == 0x82 and cmd.cla & 0xFC == 0x84 and self.channel is not None:
            return self._external_authenticate(cmd)
        cmd = self._unwrap(cmd)
        try:
            result = self._process_plain(cmd)
        except Sw as exc:
            result = Reply(exc.data, exc.sw)
        return self._wrap(result)

    def _unwrap(self, cmd: Command) -> Command:
        ch = self.channel
        if ch is None or not ch.authenticated:
            if cmd.cla & 0x0C:
                raise Sw(SW_SECURITY)
            return cmd
        if not ch.security_level & 0x01:
            if cmd.cla & 0x0C:
                self._close()
                raise Sw(SW_SECURITY)
            return cmd
        if not cmd.cla & 0x04:
            self._close()
            raise Sw(SW_SECURITY)
        try:
            plain = ch.unwrap_command(cmd.raw)
        except CardPersoError:
            self._close()
            raise Sw(SW_SECURITY) from None
        return parse_command(plain)

    def _wrap(self, result: bytes | Reply) -> bytes | Reply:
        ch = self.channel
        if ch is None or not ch.authenticated:
            return result
        data, sw = (result.data, result.sw) if isinstance(result, Reply) else (result, 0x9000)
        wrapped = ch.wrap_response(data, sw)
        return Reply(wrapped[:-2], int.from_bytes(wrapped[-2:], "big"))

    def _process_plain(self, cmd: Command) -> bytes | Reply:
        ins = cmd.ins
        if ins == 0xCA:
            return self._get_data(cmd)
        if cmd.cla & 0x80 == 0:
            raise Sw(SW_INS_NOT_SUPPORTED if ins != 0xA4 else SW_WRONG_P1P2)
        if self.nv.lifecycle == "TERMINATED":
            raise Sw(SW_CONDITIONS)
        handlers = {
            0xF2: self._get_status,
            0xE6: self._install,
            0xE2: self._store_data,
            0xF0: self._set_status,
            0xD8: self._put_key,
        }
        handler = handlers.get(ins)
        if handler is None:
            raise Sw(SW_INS_NOT_SUPPORTED)
        if self.channel is None or not self.channel.authenticated:
            raise Sw(SW_SECURITY)
        return handler(cmd)

    # -- GET DATA / GET STATUS -----------------------------------------------------------------

    def _get_data(self, cmd: Command) -> bytes:
        tag = cmd.p1 << 8 | cmd.p2
        need(not cmd.data, SW_WRONG_LENGTH)
        if tag == 0x9F7F:
            return tlv.encode(0x9F7F, self.nv.cplc)
        if tag == 0x0066:
            return card_recognition_data(self.sd.scp)
        if tag == 0x00E0:
            return key_information(self.nv, self.sd)
        if tag == 0x00CF:
            return tlv.encode(0xCF, kdd_for(self.nv.serial))
        if tag == 0x0045:
            return tlv.encode(0x45, kdd_for(self.nv.serial))
        raise Sw(SW_REF_NOT_FOUND)

    def _get_status(self, cmd: Command) -> bytes:
        """GET STATUS (GP 11.4) with P2 = 02 (TLV form), no search filter beyond ``4F 00``."""
        need(cmd.p2 & 0xFE == 0x02, SW_WRONG_P1P2)
        entries: list[tuple[bytes, str, bytes]] = []
        if cmd.p1 == 0x80:
            need(self.is_isd, SW_NOT_FOUND)
            entries.append((self.nv.isd.aid, self.nv.lifecycle, b"\x9e"))
        elif cmd.p1 == 0x40:
            entries += [
                (a.aid, a.lifecycle, a.privileges)
                for a in self.nv.apps.values()
                if self.is_isd or self._owns(a)
            ]
        elif cmd.p1 in (0x20, 0x10):
            need(self.is_isd, SW_NOT_FOUND)
            entries += [(p.aid, "LOADED", b"") for p in self.nv.packages]
        else:
            raise Sw(SW_WRONG_P1P2)
        need(bool(entries), SW_NOT_FOUND)
        out = b""
        for aid, state, priv in entries:
            code = lifecycle.CODING.get(state, 0x01)
            body = tlv.encode(0x4F, aid) + tlv.encode(0x9F70, bytes((code,)))
            if priv:
                body += tlv.encode(0xC5, priv)
            out += tlv.encode(0xE3, body)
        return out

    # -- secure channel ------------------------------------------------------------------------

    def _initialize_update(self, cmd: Command) -> bytes | Reply:
        isd = self.sd
        self._close()
        if isd.blocked:
            raise Sw(SW_AUTH_BLOCKED)
        need(cmd.p2 == 0x00, SW_WRONG_P1P2)
        need(len(cmd.data) == 8, SW_WRONG_LENGTH)
        keyset = isd.keyset(cmd.p1)
        need(keyset is not None, SW_REF_NOT_FOUND)
        assert keyset is not None
        channel = open_channel(isd, keyset, self.nv.serial)
        try:
            response = channel.initialize_update(cmd.raw)
        except CardPersoError:
            raise Sw(SW_WRONG_DATA) from None
        if response[-2:] == b"\x90\x00":
            self.channel = channel
            isd.seq_counter = channel.seq_counter
        return _reply(response)

    def _external_authenticate(self, cmd: Command) -> bytes | Reply:
        isd = self.sd
        ch = self.channel
        assert ch is not None
        if isd.blocked:
            self._close()
            raise Sw(SW_AUTH_BLOCKED)
        if ch.authenticated:
            self._close()
            raise Sw(SW_CONDITIONS)
        try:
            response = ch.external_authenticate(cmd.raw)
        except CardPersoError:
            response = b"\x69\x82"
        sw = int.from_bytes(response[-2:], "big")
        if sw == 0x9000:
            isd.auth_failures = 0
            isd.seq_counter = ch.seq_counter
            return _reply(response)
        self._close()
        if sw in (0x6300, 0x6982):
            # a wrong host cryptogram or a wrong MAC on EXTERNAL AUTHENTICATE: a failed
            # authentication, counted in non-volatile memory (answer 6300 either way)
            isd.auth_failures += 1
            return Reply(b"", 0x6300)
        return _reply(response)

    # -- INSTALL -------------------------------------------------------------------------------

    def _install(self, cmd: Command) -> bytes:
        need(cmd.p2 in (0x00, 0x80), SW_WRONG_P1P2)
        fields = _lv_fields(cmd.data)
        if cmd.p1 == 0x20:
            return self._install_for_perso(fields)
        if cmd.p1 == 0x10:
            return self._install_for_extradition(fields)
        if cmd.p1 not in (0x04, 0x08, 0x0C):
            raise Sw(SW_WRONG_P1P2)
        need(self._may_manage_content(), SW_CONDITIONS)
        need(len(fields) >= 6, SW_WRONG_DATA)
        load_file, module, app_aid, privileges = fields[0], fields[1], fields[2], fields[3]
        if cmd.p1 == 0x08:
            app = self.nv.app(app_aid)
            need(app is not None, SW_NOT_FOUND)
            assert app is not None
            need(self._owns(app), SW_CONDITIONS)
            self._transition_app(app.aid, "make_selectable")
            return b"\x00"
        need(5 <= len(app_aid) <= 16 and len(privileges) in (1, 3), SW_WRONG_DATA)
        package = next((p for p in self.nv.packages if p.aid == load_file), None)
        if package is None and load_file == SD_PACKAGE:
            package = Package(SD_PACKAGE, SD_MODULE, "ssd")
        need(package is not None, SW_NOT_FOUND)
        assert package is not None
        need(module == package.module, SW_NOT_FOUND)
        need(
            self.nv.app(app_aid) is None
            and app_aid != self.nv.isd.aid
            and self.nv.ssd(app_aid) is None,
            SW_CONDITIONS,
        )
        if package.kind == "ssd":
            # only the ISD creates security domains; the new SSD starts with no keys
            need(self.is_isd and bool(privileges[0] & PRIV_SECURITY_DOMAIN), SW_CONDITIONS)
            isd = self.nv.isd
            self.nv.ssds[app_aid.hex().upper()] = SecurityDomain(
                aid=app_aid, scp=isd.scp, keys=[], max_auth_failures=isd.max_auth_failures
            )
        else:
            need(not privileges[0] & PRIV_SECURITY_DOMAIN, SW_WRONG_DATA)
            need(self.nv.app_of_kind(package.kind) is None, SW_CONDITIONS)
        self.nv.apps[app_aid.hex().upper()] = Application(
            aid=app_aid,
            kind=package.kind,
            package=package.aid,
            lifecycle="INSTALLED",
            privileges=privileges,
            domain=b"" if self.is_isd else self.sd.aid,
        )
        if cmd.p1 & 0x08:
            self._transition_app(app_aid, "make_selectable")
        return b"\x00"

    def _install_for_perso(self, fields: list[bytes]) -> bytes:
        need(len(fields) >= 3, SW_WRONG_DATA)
        aid = fields[2]
        app = self.nv.app(aid)
        need(app is not None, SW_NOT_FOUND)
        assert app is not None
        need(app.lifecycle in ("INSTALLED", "SELECTABLE"), SW_CONDITIONS)
        need(self._owns(app), SW_CONDITIONS)
        self._perso_ssd = b""
        if app.kind == "ssd":
            # the SSD's first key set: the next PUT KEY of this session is forwarded to it
            self.perso = None
            self._perso_ssd = app.aid
            return b"\x00"
        self.perso = self.card.personalizer(app.kind)
        self._receiver = StoreDataReceiver()
        self._perso_aid = app.aid
        return b"\x00"

    def _install_for_extradition(self, fields: list[bytes]) -> bytes:
        """INSTALL [for extradition] (GP 2.3 11.5.2.3.4): ``len‖SD AID 00 len‖app AID 00
        len‖params len‖token``: associate one of this domain's applications with another
        security domain (the ISD, or an SSD). Only the ISD extradites."""
        need(self.is_isd, SW_CONDITIONS)
        need(len(fields) >= 3, SW_WRONG_DATA)
        target, aid = fields[0], fields[2]
        app = self.nv.app(aid)
        need(app is not None, SW_NOT_FOUND)
        assert app is not None
        need(app.kind != "ssd" and self._owns(app), SW_CONDITIONS)
        if target == self.nv.isd.aid:
            app.domain = b""
            return b"\x00"
        need(self.nv.ssd(target) is not None, SW_NOT_FOUND)
        app.domain = target
        return b"\x00"

    def _transition_app(self, aid: bytes, event: str) -> None:
        app = self.nv.app(aid)
        if app is None:
            raise Sw(SW_NOT_FOUND)
        try:
            app.lifecycle = lifecycle.transition(lifecycle.APP, app.lifecycle, event)
        except IllegalTransition:
            raise Sw(SW_CONDITIONS) from None

    # -- STORE DATA ----------------------------------------------------------------------------

    def _store_data(self, cmd: Command) -> bytes:
        """STORE DATA: reassembly and sequence checks by the protocol's card-side receiver
        (the same module the host uses to build the commands); decryption by the channel."""
        perso = self.perso
        need(perso is not None, SW_CONDITIONS)
        assert perso is not None and self.channel is not None
        app = self.nv.app(self._perso_aid)
        need(app is not None and app.lifecycle in ("INSTALLED", "SELECTABLE"), SW_CONDITIONS)
        assert app is not None
        need(bool(cmd.data), SW_WRONG_LENGTH)
        receiver = copy.copy(self._receiver)
        try:
            complete = receiver.feed(cmd.raw)
        except StoreDataRejected as exc:
            raise Sw(exc.sw) from None
        for item in complete:
            value = item.data
            if item.encrypted:
                try:
                    value = self.channel.decrypt_dgi_data(value)
                except CardPersoError:
                    raise Sw(SW_WRONG_DATA) from None
            perso.store(item.dgi, value, item.encrypted)
        if receiver.finished:
            perso.finish()
            self._transition_app(app.aid, "personalize")
            self.perso = None
        self._receiver = receiver
        return b""

    # -- SET STATUS ----------------------------------------------------------------------------

    def _set_status(self, cmd: Command) -> bytes:
        try:
            if cmd.p1 == 0x80:
                need(not cmd.data, SW_WRONG_LENGTH)
                need(self.is_isd, SW_CONDITIONS)
                event = lifecycle.card_event_for(self.nv.lifecycle, cmd.p2)
                self.nv.lifecycle = lifecycle.transition(lifecycle.CARD, self.nv.lifecycle, event)
                return b""
            if cmd.p1 == 0x40:
                app = self.nv.app(cmd.data) if cmd.data else None
                need(app is not None, SW_NOT_FOUND)
                assert app is not None
                need(self._owns(app), SW_CONDITIONS)
                event = lifecycle.app_event_for(app.lifecycle, cmd.p2)
                app.lifecycle = lifecycle.transition(lifecycle.APP, app.lifecycle, event)
                return b""
        except IllegalTransition:
            raise Sw(SW_CONDITIONS) from None
        raise Sw(SW_WRONG_P1P2)

    # -- PUT KEY -------------------------------------------------------------------------------

    def _put_key(self, cmd: Command) -> bytes:
        """PUT KEY (GP 11.8): P1 = KVN to replace (00 = add), P2 = 81 (keys 1-3 in one
        command). Data: new KVN, then three key blocks ``type len [len] E(DEK, key) 03 KCV``.

        After INSTALL [for personalization] of an SSD (ISD session only), the key set goes to
        that SSD (its first keys; P1 must be 00) and the SSD becomes PERSONALIZED."""
        forward = self._perso_ssd
        isd = self.sd
        if forward:
            target = self.nv.ssd(forward)
            need(target is not None and cmd.p1 == 0, SW_CONDITIONS)
            assert target is not None
            isd = target
        ch = self.channel
        assert ch is not None
        need(cmd.p2 == 0x81, SW_WRONG_P1P2)
        need(cmd.p1 == 0 or (isd.keyset(cmd.p1) is not None and cmd.p1 != 0), SW_REF_NOT_FOUND)
        data = cmd.data
        need(len(data) >= 1, SW_WRONG_LENGTH)
        new_kvn = data[0]
        need(1 <= new_kvn <= 0x7F or new_kvn == 0xFF, SW_WRONG_DATA)
        pos = 1
        algorithm = "3DES" if isd.scp == "02" else "AES"
        want_type = 0x80 if algorithm == "3DES" else 0x88
        keys: list[bytes] = []
        kcvs = b""
        for _ in range(3):
            need(pos + 2 <= len(data), SW_WRONG_LENGTH)
            ktype, klen = data[pos], data[pos + 1]
            pos += 2
            need(ktype == want_type, SW_WRONG_DATA)
            block = data[pos : pos + klen]
            need(len(block) == klen and klen >= 2, SW_WRONG_LENGTH)
            pos += klen
            # GP 11.8.2.3: DES keys "80 len E(key)"; AES keys "88 len keylen E(key)"
            key_len, enc = (block[0], block[1:]) if ktype == 0x88 else (klen, block)
            need(key_len == 16 and len(enc) == 16, SW_WRONG_DATA)
            try:
                key = ch.decrypt_dgi_data(enc)[:key_len]
            except CardPersoError:
                raise Sw(SW_WRONG_DATA) from None
            need(pos < len(data) and data[pos] == 3 and pos + 4 <= len(data), SW_WRONG_DATA)
            kcv = data[pos + 1 : pos + 4]
            pos += 4
            if not cp.equal(kcv, cp.kcv(algorithm, key)):
                raise Sw(SW_WRONG_DATA)
            keys.append(key)
            kcvs += kcv
        need(pos == len(data), SW_WRONG_LENGTH)
        new = KeySet(new_kvn, keys[0], keys[1], keys[2])
        if cmd.p1 == 0:
            need(isd.keyset(new_kvn) is None, SW_CONDITIONS)
            isd.keys.append(new)
        else:
            idx = next(i for i, ks in enumerate(isd.keys) if ks.kvn == cmd.p1)
            need(new_kvn == cmd.p1 or isd.keyset(new_kvn) is None, SW_CONDITIONS)
            isd.keys[idx] = new
        if forward:
            self._transition_app(forward, "personalize")
            self._perso_ssd = b""
        return bytes((new_kvn,)) + kcvs


def _reply(response: bytes) -> Reply:
    return Reply(response[:-2], int.from_bytes(response[-2:], "big"))


def _lv_fields(data: bytes) -> list[bytes]:
    """Split ``len ‖ value`` fields (one-byte lengths); ``6A80`` when they run past the end."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        n = data[pos]
        if pos + 1 + n > len(data):
            raise Sw(SW_WRONG_DATA)
        out.append(data[pos + 1 : pos + 1 + n])
        pos += 1 + n
    return out
