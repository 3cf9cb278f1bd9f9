"""The interface an application offers to the ISD for personalization (docs/card-dgi-map.md).
Reassembly of DGIs across STORE DATA commands is :class:`cardperso.protocol.storedata.
StoreDataReceiver`'s (the card side of the very module hosts build the commands with)."""

from __future__ import annotations

from cardperso.card.applet import SW_WRONG_DATA, Sw


class Personalizer:
    """What an application does with the DGIs the ISD routes to it.

    :meth:`store` raises :class:`~cardperso.card.applet.Sw` to refuse a DGI (the whole
    STORE DATA command is then rolled back by the card); :meth:`finish` runs on the last
    block, before the application becomes PERSONALIZED.
    """

    def store(self, dgi: int, value: bytes, encrypted: bool) -> None:
        raise Sw(SW_WRONG_DATA)

    def finish(self) -> None:
        """Check the application is complete enough to become PERSONALIZED."""


def plaintext(value: bytes, length: int, encrypted: bool, *, sensitive: bool = True) -> bytes:
    """The first ``length`` bytes of a decrypted DGI (padding ignored); ``6A80`` when a
    sensitive DGI came in clear or is too short."""
    if sensitive and not encrypted:
        raise Sw(SW_WRONG_DATA)
    if len(value) < length:
        raise Sw(SW_WRONG_DATA)
    return value[:length]
