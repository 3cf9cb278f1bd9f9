"""The ISD's view of a secure channel: a thin adapter over the CARD side of
:mod:`cardperso.protocol` (SCP02 i=55, SCP03 i=70). No cryptography here."""

from __future__ import annotations

from typing import Any

from cardperso.card.state import KeySet, SecurityDomain
from cardperso.crypto.gp import StaticKeys
from cardperso.errors import UsageError


def kdd_for(serial: bytes) -> bytes:
    """Key diversification data (10 bytes, the start of the INITIALIZE UPDATE response):
    ``'CP' 'SS' serial(4) 00 00 00 01`` - EMV/CPS bytes 4-9 and VISA2 bytes 0-1,4-7 both
    contain the unique chip serial, so diversified keys differ per card."""
    return b"CPSS" + serial + b"\x00\x01"


class CardChannel:
    """One secure-channel session of the ISD (volatile)."""

    def __init__(self, impl: Any, scp: str) -> None:
        self._impl = impl
        self.scp = scp

    @property
    def authenticated(self) -> bool:
        return bool(self._impl.is_open)

    @property
    def security_level(self) -> int:
        return int(self._impl.security_level)

    @property
    def rmac(self) -> bool:
        return bool(self.security_level & 0x10)

    @property
    def seq_counter(self) -> int:
        return int(getattr(self._impl, "seq_counter", 0))

    def initialize_update(self, apdu: bytes) -> bytes:
        return bytes(self._impl.initialize_update(apdu))

    def external_authenticate(self, apdu: bytes) -> bytes:
        return bytes(self._impl.external_authenticate(apdu))

    def unwrap_command(self, apdu: bytes) -> bytes:
        return bytes(self._impl.unwrap_command(apdu))

    def wrap_response(self, data: bytes, sw: int) -> bytes:
        return bytes(self._impl.wrap_response(data, sw))

    def decrypt_dgi_data(self, data: bytes) -> bytes:
        return bytes(self._impl.decrypt_dgi_data(data))


def open_channel(isd: SecurityDomain, keyset: KeySet, serial: bytes) -> CardChannel:
    """A fresh card-side protocol object for ``keyset`` (SCP02 i=55 or SCP03 i=70)."""
    kdd = kdd_for(serial)
    if isd.scp == "02":
        from cardperso.protocol.scp02 import Scp02Card

        keys = StaticKeys(keyset.enc, keyset.mac, keyset.dek, "3DES")
        return CardChannel(Scp02Card(keys, keyset.kvn, isd.seq_counter, 0x55, kdd=kdd), "02")
    if isd.scp == "03":
        from cardperso.protocol.scp03 import Scp03Card

        keys = StaticKeys(keyset.enc, keyset.mac, keyset.dek, "AES")
        return CardChannel(
            Scp03Card(keys, keyset.kvn, isd.seq_counter, 0x70, kdd=kdd, aid=isd.aid), "03"
        )
    raise UsageError(f"unknown secure channel protocol {isd.scp!r}")
