"""The chip catalogue: ``profiles/chips/*.yaml``, one file per chip family.

A chip profile says how a station recognises a chip (its ATR: a value under a mask, or the
start of its historical bytes), which card operating system it runs (``gp``: GlobalPlatform /
Java Card, personalized with STORE DATA; ``native``: a native COS such as FMCOS 2.0,
personalized with its own file and key commands), the transport-key scheme its blanks come
with, its limits (largest command data field, extended length) and the command set the driver
may use. The files are checked like the product profiles (:mod:`cardperso.profiles.schema`:
the first problem names ``file:line`` and the field) and nothing else reads them.

The catalogue is found in ``$CARDPERSO_CHIPS`` (a directory) or the ``chips/`` directory beside
the product profiles (:func:`cardperso.profiles.loader.profile_dirs`).

ATR matching (ISO/IEC 7816-3 §8): the historical bytes are the last K bytes before TCK, K the
low nibble of T0, after the interface bytes that T0 and each TDi announce.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cardperso.errors import ProfileError
from cardperso.profiles import schema as s
from cardperso.profiles.loader import _read_profile, profile_dirs

__all__ = [
    "CHIP_SCHEMA",
    "COMMANDS",
    "COS_KINDS",
    "ChipProfile",
    "chip_dirs",
    "historical_bytes",
    "load_catalogue",
    "parse_chip",
]

COS_KINDS = ("gp", "native")
#: Commands a chip profile may list (the names the drivers ask for).
COMMANDS = (
    "SELECT",
    "GET DATA",
    "GET CHALLENGE",
    "INITIALIZE UPDATE",
    "EXTERNAL AUTHENTICATE",
    "INTERNAL AUTHENTICATE",
    "PUT KEY",
    "INSTALL",
    "STORE DATA",
    "SET STATUS",
    "GET PROCESSING OPTIONS",
    "GENERATE AC",
    "ERASE DF",
    "CREATE FILE",
    "WRITE KEY",
    "READ BINARY",
    "UPDATE BINARY",
    "READ RECORD",
    "UPDATE RECORD",
    "VERIFY",
    "CHANGE PIN",
    "END PERSONALIZATION",
    # the PKI application (docs/pki.md)
    "GENERATE KEY PAIR",
    "SET PIN",
    "KEY ENVELOPE",
    "IMPORT KEY",
    "PERFORM SECURITY OPERATION",
)
#: Transport-key schemes: ``gp-key-set`` - the security domain's key set (the product
#: profile's ``gp.transport_kmc``); ``native-master-key`` - the native COS's external
#: authentication master key (key 00 of the MF key file): the store's key ``transport_key.key``
#: diversified by the chip serial (:func:`cardperso.chip.native.transport_factor`).
SCHEMES = ("gp-key-set", "native-master-key")
#: Largest number of chip profiles in one catalogue (a hostile directory meets a limit).
MAX_CHIPS = 64

CHIP_SCHEMA = s.Map(
    {
        "name": s.Str(pattern=r"[a-z0-9][a-z0-9-]*", max_len=64, hint="a chip name (a-z, 0-9, -)"),
        "title": s.Str(min_len=1, max_len=200),
        "cos": s.Enum(COS_KINDS),
        "atr": s.Map(
            {"value": s.Hex(min_len=2, max_len=33), "mask": s.Hex(min_len=2, max_len=33)},
            required=("value", "mask"),
        ),
        "historical": s.Hex(min_len=1, max_len=15),
        "serial_offset": s.Int(min=0, max=11),
        "algorithm": s.Enum(("3DES", "SM4")),
        "transport_key": s.Map(
            {
                "scheme": s.Enum(SCHEMES),
                "key": s.Str(pattern=r"[a-z0-9][a-z0-9._-]*", max_len=255, hint="a key name"),
            },
            required=("scheme",),
        ),
        "limits": s.Map(
            {"max_data": s.Int(min=16, max=65535), "extended_length": s.Bool()},
            required=("max_data",),
            defaults={"extended_length": False},
        ),
        "commands": s.ListOf(s.Enum(COMMANDS), min_len=1),
    },
    required=("name", "title", "cos", "transport_key", "limits", "commands"),
)


@dataclass(frozen=True, slots=True)
class ChipProfile:
    """One chip family of the catalogue (see the module docstring)."""

    name: str
    title: str
    cos: str
    atr_value: bytes
    atr_mask: bytes
    historical: bytes
    algorithm: str
    transport_scheme: str
    transport_key: str
    max_data: int
    extended_length: bool
    commands: frozenset[str]
    source: str = ""
    #: Where the 4-byte chip serial sits in the historical bytes (native chips: no CPLC).
    serial_offset: int | None = None

    def serial(self, atr: bytes) -> bytes:
        """The chip serial read from ``atr`` (``serial_offset``); empty when not declared."""
        if self.serial_offset is None:
            return b""
        found = historical_bytes(atr)[self.serial_offset : self.serial_offset + 4]
        return found if len(found) == 4 else b""

    def matches(self, atr: bytes) -> bool:
        """Whether ``atr`` is this family's: the masked value, or the historical bytes' start."""
        if self.atr_value:
            if len(atr) < len(self.atr_value):
                return False
            return all(a & m == v & m for a, v, m in zip(atr, self.atr_value, self.atr_mask))
        return historical_bytes(atr).startswith(self.historical)


def historical_bytes(atr: bytes) -> bytes:
    """The historical bytes of ``atr`` (ISO/IEC 7816-3 §8.2); empty for a malformed ATR."""
    if len(atr) < 2 or atr[0] not in (0x3B, 0x3F):
        return b""
    k, y, i = atr[1] & 0x0F, atr[1] >> 4, 2
    while True:
        td = None
        for bit in (1, 2, 4, 8):  # TAi, TBi, TCi, TDi
            if y & bit:
                if i >= len(atr):
                    return b""
                if bit == 8:
                    td = atr[i]
                i += 1
        if td is None:
            break
        y = td >> 4
    return atr[i : i + k] if i + k <= len(atr) else b""


def parse_chip(text: str, filename: str = "<chip>") -> ChipProfile:
    """Parse and check one chip profile; errors name ``filename``, the line and the field."""
    root = s.load_yaml(text, filename)
    data = s.check(CHIP_SCHEMA, root, filename)

    def fail(path: str, reason: str) -> ProfileError:
        return s.fail_at(s.find_node(root, path) or root, filename, path, reason)

    atr = data.get("atr")
    historical = data.get("historical", b"")
    if (atr is None) == (not historical):
        raise fail("atr", "give exactly one of 'atr' (value and mask) or 'historical'")
    if atr is not None and len(atr["value"]) != len(atr["mask"]):
        raise fail("atr.mask", "must be as long as atr.value")
    if atr is not None and not any(atr["mask"]):
        raise fail("atr.mask", "an all-zero mask would match every chip")
    key = data["transport_key"]
    if data["cos"] == "native":
        if key["scheme"] != "native-master-key" or "key" not in key:
            raise fail("transport_key", "a native chip needs scheme native-master-key and a key")
        if "algorithm" not in data:
            raise fail("algorithm", "a native chip needs its algorithm (SM4 or 3DES)")
        if "serial_offset" not in data:
            raise fail("serial_offset", "a native chip needs where its serial is in the ATR")
    elif key["scheme"] != "gp-key-set":
        raise fail("transport_key.scheme", "a gp chip's transport key is its gp-key-set")
    return ChipProfile(
        name=data["name"],
        title=data["title"],
        cos=data["cos"],
        atr_value=atr["value"] if atr else b"",
        atr_mask=atr["mask"] if atr else b"",
        historical=historical,
        algorithm=data.get("algorithm", ""),
        transport_scheme=key["scheme"],
        transport_key=key.get("key", ""),
        max_data=data["limits"]["max_data"],
        extended_length=data["limits"]["extended_length"],
        commands=frozenset(data["commands"]),
        source=filename,
        serial_offset=data.get("serial_offset"),
    )


def chip_dirs() -> list[Path]:
    """Directories the catalogue is read from (the first that exists is used)."""
    env = os.environ.get("CARDPERSO_CHIPS")
    if env:
        return [Path(env)]
    return [d / "chips" for d in profile_dirs()]


def load_catalogue(directory: Path | None = None) -> tuple[ChipProfile, ...]:
    """Every chip profile of the catalogue, sorted by name (file name = chip name)."""
    where = directory
    if where is None:
        where = next((d for d in chip_dirs() if d.is_dir()), None)
        if where is None:
            raise ProfileError("no chip catalogue found (profiles/chips or $CARDPERSO_CHIPS)")
    if not where.is_dir():
        raise ProfileError(f"{where}: the chip catalogue is not a directory")
    files = sorted(where.glob("*.yaml"))
    if len(files) > MAX_CHIPS:
        raise ProfileError(f"{where}: more than {MAX_CHIPS} chip profiles")
    chips = []
    for path in files:
        chip = parse_chip(_read_profile(path), str(path))
        if chip.name != path.stem:
            raise ProfileError(f"{path}: field 'name': {chip.name!r} differs from the file name")
        chips.append(chip)
    if not chips:
        raise ProfileError(f"{where}: the chip catalogue is empty")
    return tuple(chips)
