"""The GlobalPlatform client, sans-IO: the commands a host sends to a security domain.

Every function here is a flow (see :mod:`cardperso.chip.transport`) or builds one command.
A status word other than 9000 raises :class:`~cardperso.errors.CardError` naming the step; a
card cryptogram that does not verify raises :class:`~cardperso.errors.CryptogramMismatch`
**before** EXTERNAL AUTHENTICATE is sent (wrong keys are never retried: the domain would count
a failure). The secure channel is the host side of :mod:`cardperso.protocol.scp02` or
:mod:`~cardperso.protocol.scp03`; :class:`SecureSession` wraps commands, unwraps answers and
encrypts key data under the session DEK and sends STORE DATA. PUT KEY replaces the key set the card named in its
INITIALIZE UPDATE answer (the key version is taken from the card, not assumed).
"""

from __future__ import annotations

from collections.abc import Callable

from cardperso.chip.transport import Flow
from cardperso.codec.apdu import CommandAPDU, ResponseAPDU
from cardperso.codec.status import describe
from cardperso.crypto import kcv
from cardperso.crypto.gp import StaticKeys
from cardperso.errors import CardError, UsageError
from cardperso.layouts.gp import CPLC, ISD_AID
from cardperso.protocol.scp02 import Scp02Host
from cardperso.protocol.scp03 import Scp03Host
from cardperso.protocol.storedata import DgiItem, StoreDataConventions, build_store_data

__all__ = [
    "ISD_AID",
    "SecureSession",
    "get_data",
    "install_command",
    "install_for_extradition",
    "install_for_perso",
    "ok",
    "open_channel",
    "open_domain",
    "put_key_command",
    "read_serial",
    "select",
    "set_status",
]

KeySource = StaticKeys | Callable[[bytes], StaticKeys]


def ok(raw: bytes, step: str) -> bytes:
    """The data of a 9000 answer; :class:`CardError` (status word, ``step``) otherwise."""
    resp = ResponseAPDU.parse(raw)
    if resp.sw != 0x9000:
        raise CardError(resp.sw, step, describe(resp.sw))
    return resp.data


def select(aid: bytes, step: str = "SELECT") -> Flow[bytes]:
    """SELECT by name; returns the FCI."""
    return ok((yield CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid, le=256).to_bytes()), step)


def get_data(tag: int, step: str = "") -> Flow[bytes]:
    """GET DATA of a two-byte tag (P1 P2); returns the data field."""
    apdu = CommandAPDU(0x80, 0xCA, tag >> 8, tag & 0xFF, le=256).to_bytes()
    return ok((yield apdu), step or f"GET DATA {tag:04X}")


def read_serial() -> Flow[bytes]:
    """SELECT ISD, GET DATA CPLC (no authentication needed) → the 4-byte IC serial number."""
    yield from select(ISD_AID, "SELECT ISD")
    raw = yield from get_data(0x9F7F, "GET DATA CPLC")
    if raw[:2] == b"\x9f\x7f":
        raw = raw[3:]
    serial: bytes = CPLC.decode(raw).ic_serial_number
    return serial


class SecureSession:
    """An authenticated session: wrap commands, unwrap answers, encrypt key data."""

    __slots__ = ("host",)

    def __init__(self, host: Scp02Host | Scp03Host) -> None:
        self.host = host

    @property
    def kdd(self) -> bytes:
        """The card's key diversification data (from INITIALIZE UPDATE)."""
        return self.host.session.kdd if self.host.session is not None else b""

    @property
    def kvn(self) -> int:
        """The version of the key set the card opened the session with (its own answer)."""
        return self.host.session.kvn if self.host.session is not None else 0

    def send(self, apdu: bytes, step: str) -> Flow[bytes]:
        """Send ``apdu`` in the session; the answer's data, or :class:`CardError`."""
        raw = yield self.host.wrap(apdu)
        return ok(self.host.unwrap(raw), step)

    def send_sw(self, apdu: bytes) -> Flow[int]:
        """Send and return the status word (no check)."""
        raw = yield self.host.wrap(apdu)
        return ResponseAPDU.parse(self.host.unwrap(raw)).sw

    def encrypt(self, data: bytes) -> bytes:
        """``data`` encrypted under the session DEK (sensitive DGIs, key values)."""
        return bytes(self.host.encrypt_dgi_data(data))

    def store_data(
        self, items: list[DgiItem], conv: StoreDataConventions, step: str = "STORE DATA"
    ) -> Flow[None]:
        """STORE DATA of ``items`` (DGIs; encrypted ones under the session DEK) to the
        application INSTALL [for personalization] named; each command's step is ``step #n``."""
        for n, cmd in enumerate(build_store_data(items, conv, self.encrypt)):
            yield from self.send(cmd, f"{step} #{n}")

    def put_key(self, new: StaticKeys, new_kvn: int, step: str = "PUT KEY") -> Flow[bytes]:
        """PUT KEY replacing the key set this session was opened with (its version as the card
        gave it in INITIALIZE UPDATE) by ``new`` under version ``new_kvn``."""
        command = put_key_command(new, new_kvn, self.encrypt, replace_kvn=self.kvn)
        return (yield from self.send(command, step))

    def close(self) -> None:
        self.host.close()


def open_channel(
    keys: KeySource,
    *,
    scp: str = "02",
    i: int = 0x55,
    kvn: int = 0,
    security_level: int = 0x03,
) -> Flow[SecureSession]:
    """INITIALIZE UPDATE and EXTERNAL AUTHENTICATE to the selected domain with ``keys`` (or a
    function of the card's KDD); ``kvn`` 0 takes the card's default key set."""
    host: Scp02Host | Scp03Host
    if scp == "03":
        host = Scp03Host(keys, security_level, kvn=kvn)
    elif scp == "02":
        host = Scp02Host(keys, security_level, i, kvn)
    else:
        raise UsageError(f"secure channel protocol SCP{scp} is not supported (02, 03)")
    raw = yield host.initialize_update()
    ok(raw, "INITIALIZE UPDATE")
    ext = host.process_initialize_update_response(raw)  # raises CryptogramMismatch
    raw = yield ext
    ok(raw, "EXTERNAL AUTHENTICATE")
    host.process_external_authenticate_response(raw)
    return SecureSession(host)


def open_domain(
    aid: bytes,
    keys: KeySource,
    *,
    kvn: int = 0,
    security_level: int = 0x03,
    scp: str = "02",
    i: int = 0x55,
) -> Flow[SecureSession]:
    """SELECT the security domain ``aid`` and open the secure channel to it."""
    yield from select(aid, "SELECT domain")
    return (yield from open_channel(keys, scp=scp, i=i, kvn=kvn, security_level=security_level))


def put_key_command(
    new: StaticKeys, new_kvn: int, encrypt: Callable[[bytes], bytes], *, replace_kvn: int = 0
) -> bytes:
    """PUT KEY (GP 2.3 §11.8) of a key set: P1 = the KVN replaced (00 = a new set), P2 = 81;
    the three keys encrypted under the session DEK, each with its check value (DES keys
    ``80 10 E(key)``, AES keys ``88 11 10 E(key)``, GP 2.3 §11.8.2.3)."""
    data = bytearray([new_kvn])
    for key in (new.enc, new.mac, new.dek):
        head = b"\x88\x11\x10" if new.algorithm == "AES" else b"\x80\x10"
        data += head + encrypt(key) + b"\x03" + kcv(new.algorithm, key)
    return CommandAPDU(0x80, 0xD8, replace_kvn, 0x81, bytes(data), le=256).to_bytes()


def install_command(
    p1: int, load_file: bytes, module: bytes, aid: bytes, privileges: bytes
) -> bytes:
    """INSTALL [for install] (P1 04), [+ make selectable] (0C) or [for make selectable] (08),
    install parameters ``C9 00``, no token."""
    data = (
        bytes([len(load_file)]) + load_file + bytes([len(module)]) + module
        + bytes([len(aid)]) + aid + bytes([len(privileges)]) + privileges + b"\x02\xc9\x00\x00"
    )  # fmt: skip
    return CommandAPDU(0x80, 0xE6, p1, 0x00, data, le=256).to_bytes()


def install_for_perso(aid: bytes) -> bytes:
    """INSTALL [for personalization] of ``aid``: STORE DATA then goes to it."""
    data = b"\x00\x00" + bytes([len(aid)]) + aid + b"\x00\x00\x00"
    return CommandAPDU(0x80, 0xE6, 0x20, 0x00, data).to_bytes()


def install_for_extradition(domain: bytes, aid: bytes) -> bytes:
    """INSTALL [for extradition] (GP 2.3 11.5.2.3.4): associate ``aid`` with ``domain``."""
    data = bytes([len(domain)]) + domain + b"\x00" + bytes([len(aid)]) + aid + b"\x00\x00\x00"
    return CommandAPDU(0x80, 0xE6, 0x10, 0x00, data).to_bytes()


def set_status(state: int, p1: int = 0x80) -> bytes:
    """SET STATUS (GP 2.3 §11.10): P1 80 = the issuer security domain, P2 = the new state
    (07 INITIALIZED, 0F SECURED)."""
    return CommandAPDU(0x80, 0xF0, p1, state).to_bytes()
