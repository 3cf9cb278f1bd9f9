"""The native-COS virtual chip's non-volatile memory: an FMCOS 2.0-style file system.

MF ``3F00`` → DFs (by FID, with a DF name) → each DF has at most one key file and its EFs
(binary, fixed / variable / cyclic record files). Keys live in the DF's key file with their
type, usage right, modification right, follow-up state or version, and error counter
(:class:`cardperso.protocol.fmcos.KeyRecord` fields). The image is JSON like the GP card's
(``"format": "cardperso-native/1"``), written atomically by
:func:`cardperso.card.state.write_image`, and like it holds key values in clear: a
simulator's EEPROM, never a key store.

File types (FMCOS 2.0 manual, CREATE FILE; fmcos.py ``CPUFileType``): ``38`` MF/DF, ``3F`` key
file, ``28`` binary, ``2A`` fixed records, ``2C`` variable records, ``2E`` cyclic; bit 80 of
the type: writes need line protection (MAC), C0: MAC and encryption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cardperso.card.pki_core import PkiData
from cardperso.card.state import IMAGE_MAX, dump_image, load_image, write_image
from cardperso.errors import DataError

__all__ = [
    "FORMAT",
    "MF_FID",
    "NativeDf",
    "NativeEf",
    "NativeKey",
    "NativeState",
    "chip_image",
    "dumps",
    "loads",
    "read_image",
    "write_image",
]

FORMAT = "cardperso-native/1"
MF_FID = 0x3F00
#: The MF's name (FMCOS's factory MF: "1PAY.SYS.DDF01").
MF_NAME = b"1PAY.SYS.DDF01"
EF_BINARY, EF_FIXED, EF_VARIABLE, EF_CYCLIC = 0x28, 0x2A, 0x2C, 0x2E


@dataclass(slots=True)
class NativeKey:
    """One key of a key file (``repr`` leaves out the value and the tries left)."""

    key_id: int
    key_type: int
    use: int
    change: int
    third: int
    fourth: int
    value: bytes = field(repr=False)

    @property
    def tries_left(self) -> int:
        return self.fourth & 0x0F

    @property
    def try_limit(self) -> int:
        return self.fourth >> 4


@dataclass(slots=True)
class NativeEf:
    """An elementary file: binary (``data``) or records (``records``, ``b""`` = unwritten)."""

    fid: int
    file_type: int
    read_right: int
    write_right: int
    access: int
    size: int = 0
    record_count: int = 0
    record_length: int = 0
    data: bytes = b""
    records: list[bytes] = field(default_factory=list)

    @property
    def kind(self) -> int:
        return self.file_type & 0x3F

    @property
    def sfi(self) -> int:
        return self.fid & 0x1F

    @property
    def needs_mac(self) -> bool:
        return bool(self.file_type & 0x80)

    @property
    def needs_encryption(self) -> bool:
        return self.file_type & 0xC0 == 0xC0


@dataclass(slots=True)
class NativeDf:
    """A dedicated file (the MF too): its rights, key file, EFs and child DFs. ``ended`` is
    False while the DF is being created (its files and keys may be made without rights; END
    OF CREATION, ``80 E0 00 01 00``, ends that)."""

    fid: int
    name: bytes
    create_right: int
    erase_right: int
    app_id: int = 0xFF
    size: int = 0
    ended: bool = False
    has_key_file: bool = False
    key_file_fid: int = 0
    add_right: int = 0xF0
    key_capacity: int = 0
    keys: list[NativeKey] = field(default_factory=list)
    efs: list[NativeEf] = field(default_factory=list)
    dfs: list[NativeDf] = field(default_factory=list)

    def key(self, key_id: int, key_type: int | None = None) -> NativeKey | None:
        for k in self.keys:
            if k.key_id == key_id and (key_type is None or k.key_type & 0x3F == key_type):
                return k
        return None

    def ef(self, fid: int) -> NativeEf | None:
        return next((e for e in self.efs if e.fid == fid), None)

    def ef_by_sfi(self, sfi: int) -> NativeEf | None:
        return next((e for e in self.efs if e.sfi == sfi), None)

    def df(self, fid: int) -> NativeDf | None:
        return next((d for d in self.dfs if d.fid == fid), None)


@dataclass(slots=True)
class NativeState:
    """The chip: serial, algorithm of its keys (``SM4`` third generation, ``3DES`` second),
    and the MF with everything under it."""

    serial: bytes
    algorithm: str
    mf: NativeDf
    #: The PKI ADF's keys, certificates and PINs (:mod:`cardperso.card.pki_native`).
    pki: PkiData = field(default_factory=PkiData)


def dumps(state: NativeState, *, compact: bool = False) -> str:
    return dump_image(FORMAT, "chip", state, compact=compact)


def loads(text: str) -> NativeState:
    """Parse image text; :class:`DataError` for anything that is not a native-chip image."""
    state = load_image(text, FORMAT, "chip", NativeState, "chip")
    if state.algorithm not in ("SM4", "3DES") or len(state.serial) != 4:
        raise DataError("bad algorithm or serial", field="chip")
    return state


def read_image(path: Path) -> NativeState:
    return loads(Path(path).read_text(encoding="utf-8"))


def chip_image(path: Path) -> NativeState | None:
    """The chip in ``path`` if it is a native-chip image (a regular JSON file of at most
    :data:`~cardperso.card.state.IMAGE_MAX` bytes whose ``format`` is :data:`FORMAT`), else
    ``None``, like :func:`cardperso.card.state.card_image` for GP card images."""
    try:
        if not path.is_file() or path.stat().st_size > IMAGE_MAX:
            return None
        with path.open("rb") as fh:
            if fh.read(64).lstrip()[:1] != b"{":
                return None
            text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return loads(text)
    except (DataError, ValueError, TypeError, KeyError, RecursionError):
        return None
