"""Opening a GlobalPlatform secure channel to a security domain, sans-IO (factory and bank).

A small generator over the host side of :mod:`cardperso.protocol.scp02`: SELECT the domain,
INITIALIZE UPDATE with the key version, EXTERNAL AUTHENTICATE. A card cryptogram that does
not verify raises :class:`~cardperso.errors.CryptogramMismatch` **before** EXTERNAL
AUTHENTICATE is sent (wrong keys: never retried, the domain would count a failure).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from cardperso.codec.apdu import CommandAPDU, ResponseAPDU
from cardperso.codec.status import describe
from cardperso.crypto import kcv
from cardperso.crypto.gp import StaticKeys
from cardperso.errors import CardError, UsageError
from cardperso.protocol.scp02 import Scp02Host

__all__ = [
    "SecureSession",
    "install_command",
    "install_for_extradition",
    "install_for_perso",
    "ok",
    "open_domain",
    "put_key_command",
]

Flow = Generator[bytes, bytes, "SecureSession"]


def ok(raw: bytes, step: str) -> bytes:
    resp = ResponseAPDU.parse(raw)
    if resp.sw != 0x9000:
        raise CardError(resp.sw, step, describe(resp.sw))
    return resp.data


class SecureSession:
    """An authenticated session: wrap commands, unwrap answers, encrypt key data."""

    def __init__(self, host: Scp02Host) -> None:
        self.host = host

    @property
    def kdd(self) -> bytes:
        return self.host.session.kdd if self.host.session is not None else b""

    def send(self, apdu: bytes, step: str) -> Generator[bytes, bytes, bytes]:
        raw = yield self.host.wrap(apdu)
        return ok(self.host.unwrap(raw), step)

    def send_sw(self, apdu: bytes) -> Generator[bytes, bytes, int]:
        """Send and return the status word (no check)."""
        raw = yield self.host.wrap(apdu)
        return ResponseAPDU.parse(self.host.unwrap(raw)).sw

    def encrypt(self, data: bytes) -> bytes:
        return bytes(self.host.encrypt_dgi_data(data))

    def close(self) -> None:
        self.host.close()


def open_domain(
    aid: bytes,
    keys: StaticKeys | Callable[[bytes], StaticKeys],
    *,
    kvn: int = 0,
    security_level: int = 0x03,
    scp: str = "02",
) -> Flow:
    """SELECT ``aid`` and open SCP02 (i=55) with ``keys`` (or a function of the KDD)."""
    if scp != "02":
        raise UsageError("security domains of two-stage cards use SCP02 (i=55)")
    ok((yield CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid, le=256).to_bytes()), "SELECT domain")
    host = Scp02Host(keys, security_level, 0x55, kvn)
    raw = yield host.initialize_update()
    ok(raw, "INITIALIZE UPDATE")
    ext = host.process_initialize_update_response(raw)  # raises CryptogramMismatch
    raw = yield ext
    ok(raw, "EXTERNAL AUTHENTICATE")
    host.process_external_authenticate_response(raw)
    return SecureSession(host)


def put_key_command(
    new: StaticKeys, new_kvn: int, encrypt: Callable[[bytes], bytes], *, replace_kvn: int = 0
) -> bytes:
    """PUT KEY (GP 2.3 §11.8) of a 3DES key set: P1 = the KVN replaced (00 = a new set),
    P2 = 81; keys encrypted under the session DEK, each with its check value."""
    data = bytearray([new_kvn])
    for key in (new.enc, new.mac, new.dek):
        data += b"\x80\x10" + encrypt(key) + b"\x03" + kcv("3DES", key)
    return CommandAPDU(0x80, 0xD8, replace_kvn, 0x81, bytes(data), le=256).to_bytes()


def install_command(
    p1: int, load_file: bytes, module: bytes, aid: bytes, privileges: bytes
) -> bytes:
    """INSTALL [for install] (P1 04), [+ make selectable] (0C) or [for make selectable] (08)."""
    data = (
        bytes([len(load_file)]) + load_file + bytes([len(module)]) + module
        + bytes([len(aid)]) + aid + bytes([len(privileges)]) + privileges + b"\x02\xc9\x00\x00"
    )  # fmt: skip
    return CommandAPDU(0x80, 0xE6, p1, 0x00, data, le=256).to_bytes()


def install_for_perso(aid: bytes) -> bytes:
    data = b"\x00\x00" + bytes([len(aid)]) + aid + b"\x00\x00\x00"
    return CommandAPDU(0x80, 0xE6, 0x20, 0x00, data).to_bytes()


def install_for_extradition(domain: bytes, aid: bytes) -> bytes:
    """INSTALL [for extradition] (GP 2.3 11.5.2.3.4): associate ``aid`` with ``domain``."""
    data = bytes([len(domain)]) + domain + b"\x00" + bytes([len(aid)]) + aid + b"\x00\x00\x00"
    return CommandAPDU(0x80, 0xE6, 0x10, 0x00, data).to_bytes()
