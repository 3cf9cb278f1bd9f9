"""The virtual card's non-volatile memory: typed state and its image file.

How this works
--------------
One card = one image file, JSON (``"format": "cardperso-vcard/1"``) so that a person can
inspect a card with any text tool. Bytes are upper-case hex strings; every object is a
mutable slotted dataclass below (non-volatile memory *is* mutable state), converted to and
from JSON by one generic walker (:func:`to_json` / :func:`from_json`) driven by the type hints.

Writes are atomic like an EEPROM transaction: :func:`write_image` writes a temporary file in
the same directory (:class:`cardperso.outputs.AtomicFile`, the one atomic writer of the
project), ``fsync``-s it, ``os.replace``-s the image and ``fsync``-s the directory.
A crash at any point leaves either the old image or the new one, never a mixture; a stray
temporary file is ignored by :func:`read_image`.

The image holds key values in clear: it is a *simulator's* EEPROM, never a production key
store. Treat image files of cards personalized with real keys as secret.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardperso.card.pki_core import PkiData
from cardperso.errors import DataError
from cardperso.outputs import AtomicFile

_T = typing.TypeVar("_T")

FORMAT = "cardperso-vcard/1"

#: GlobalPlatform test key 404142...4F (GP card specification, test key set, KVN FF).
GP_TEST_KEY = bytes(range(0x40, 0x50))


@dataclass(slots=True)
class KeySet:
    """One GlobalPlatform static key set (ENC, MAC, DEK) with its key version number.
    ``repr`` shows the version only."""

    kvn: int
    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)


@dataclass(slots=True)
class SecurityDomain:
    """A security domain (the issuer security domain, or a supplementary one created by
    INSTALL): its keys, sequence counter and failed-authentication count."""

    aid: bytes
    scp: str
    keys: list[KeySet]
    seq_counter: int = 0
    auth_failures: int = 0
    max_auth_failures: int = 10

    @property
    def blocked(self) -> bool:
        return self.auth_failures >= self.max_auth_failures

    def keyset(self, kvn: int) -> KeySet | None:
        """The key set with version ``kvn`` (0 = the first/default one)."""
        for ks in self.keys:
            if kvn in (0, ks.kvn):
                return ks
        return None


@dataclass(slots=True)
class Package:
    """An executable load file present on the card, with its one executable module."""

    aid: bytes
    module: bytes
    kind: str


@dataclass(slots=True)
class Application:
    """An installed application instance and its GlobalPlatform life-cycle state."""

    aid: bytes
    kind: str
    package: bytes
    lifecycle: str
    privileges: bytes = b"\x00"
    #: AID of the associated security domain (empty: the issuer security domain).
    domain: bytes = b""


@dataclass(slots=True)
class SsseData:
    """Personalized contents of the SSSE application (see docs/card-dgi-map.md). ``repr``
    leaves out the records (personal data), the keys and the PIN."""

    algorithm: int = 0
    records: dict[str, bytes] = field(default_factory=dict, repr=False)
    keys: dict[str, bytes] = field(default_factory=dict, repr=False)
    pin: bytes = field(default=b"", repr=False)
    pin_try_limit: int = 0
    pin_tries_left: int = 0
    generation: int = 3


@dataclass(slots=True)
class PbocData:
    """Personalized contents and counters of the PBOC debit / e-cash application. ``repr``
    leaves out the DGIs (personal data), the keys and the PIN block."""

    dgis: dict[str, bytes] = field(default_factory=dict, repr=False)
    ac_key: bytes = field(default=b"", repr=False)
    smi_key: bytes = field(default=b"", repr=False)
    smc_key: bytes = field(default=b"", repr=False)
    pin_block: bytes = field(default=b"", repr=False)
    pin_try_limit: int = 0
    pin_tries_left: int = 0
    atc: int = 0
    last_online_atc: int = 0
    ec_balance: int = 0
    ec_balance_limit: int = 0
    ec_single_limit: int = 0
    ec_reset_threshold: int = 0
    #: card risk management (cardperso.card.pboc_crm): offline debit transactions, their
    #: amount, and those in another currency since the last online one, an online transaction
    #: left without its second GENERATE AC, issuer authentication failed in the last online one
    offline_count: int = 0
    offline_amount: int = 0
    offline_intl_count: int = 0
    online_pending: bool = False
    issuer_auth_failed: bool = False


@dataclass(slots=True)
class CardState:
    """The whole non-volatile memory of one virtual card."""

    serial: bytes
    lifecycle: str
    isd: SecurityDomain
    packages: list[Package]
    apps: dict[str, Application] = field(default_factory=dict)
    ssse: SsseData = field(default_factory=SsseData)
    pboc: PbocData = field(default_factory=PbocData)
    cplc: bytes = b""
    #: Supplementary security domains by AID (upper-case hex); each also has an entry of
    #: kind ``"ssd"`` in :attr:`apps` (life-cycle, privileges, associated domain).
    ssds: dict[str, SecurityDomain] = field(default_factory=dict)
    #: The PKI applet's files and PINs (:mod:`cardperso.card.pki`).
    pki: PkiData = field(default_factory=PkiData)

    def app(self, aid: bytes) -> Application | None:
        return self.apps.get(aid.hex().upper())

    def ssd(self, aid: bytes) -> SecurityDomain | None:
        return self.ssds.get(aid.hex().upper())

    def domain_of(self, app: Application) -> bytes:
        """AID of the security domain ``app`` is associated with."""
        return app.domain or self.isd.aid

    def app_of_kind(self, kind: str) -> Application | None:
        for app in self.apps.values():
            if app.kind == kind:
                return app
        return None


# -- generic JSON conversion ---------------------------------------------------------------------


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def to_json(obj: Any) -> Any:
    """A JSON-compatible value for a state object (bytes as upper-case hex)."""
    if isinstance(obj, bytes):
        return obj.hex().upper()
    if isinstance(obj, (int, str)) or obj is None:
        return obj
    if isinstance(obj, list):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {name: to_json(getattr(obj, name)) for name in _field_names(type(obj))}
    return obj


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is bytes:
        if not isinstance(value, str):
            raise DataError("expected a hex string", field=where)
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise DataError("bad hex string", field=where) from None
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise DataError(f"expected {tp.__name__}", field=where)
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise DataError("expected a list", field=where)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise DataError("expected an object", field=where)
        return {k: _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_json(tp, value, where)
    raise DataError(f"unsupported type {tp!r}", field=where)  # pragma: no cover


def from_json(cls: type[_T], data: Any, where: str = "card") -> _T:
    """Rebuild dataclass ``cls`` from :func:`to_json` output, validating every field type."""
    if not isinstance(data, dict):
        raise DataError("expected an object", field=where)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DataError("missing", field=f"{where}.{f.name}")
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def dump_image(fmt: str, key: str, state: Any, *, compact: bool = False) -> str:
    """The image text ``{"format": fmt, key: state}`` (stable key order, so equal states give
    equal text); ``compact`` drops the indentation (faster to compare). Shared by every chip
    model's image (GP card here, the native-COS chip in :mod:`cardperso.card.native_fs`)."""
    doc = {"format": fmt, key: to_json(state)}
    if compact:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return json.dumps(doc, indent=1, sort_keys=True)


def load_image(text: str, fmt: str, key: str, cls: type[_T], what: str) -> _T:
    """Parse image text of format ``fmt`` into ``cls``; :class:`DataError` for anything else."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{what} image is not JSON: {exc.msg}", field="image") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise DataError(f"not a {fmt} {what} image", field="format")
    return from_json(cls, doc.get(key))


def dumps(state: CardState, *, compact: bool = False) -> str:
    """The image text of a GP card (see :func:`dump_image`)."""
    return dump_image(FORMAT, "card", state, compact=compact)


def loads(text: str) -> CardState:
    """Parse image text; raise :class:`DataError` for anything that is not a valid image."""
    return load_image(text, FORMAT, "card", CardState, "card")


#: The largest file taken for a card image (a personalized image is a few kilobytes).
IMAGE_MAX = 4 << 20


def card_image(path: Path) -> CardState | None:
    """The card in ``path`` if it is a card image (a regular JSON file of at most
    :data:`IMAGE_MAX` bytes whose ``format`` is :data:`FORMAT`), else ``None``: a directory of
    cards also holds printed faces, magnetic tracks and notes, which are not cards."""
    try:
        if not path.is_file() or path.stat().st_size > IMAGE_MAX:
            return None
        with path.open("rb") as fh:
            if fh.read(64).lstrip()[:1] != b"{":  # a PNG, a CSV, an empty file: not JSON
                return None
            text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return loads(text)
    except (DataError, ValueError, TypeError, KeyError, RecursionError):
        return None


def read_image(path: Path) -> CardState:
    return loads(path.read_text(encoding="utf-8"))


def write_image(path: Path, text: str, *, tear: bool = False) -> None:
    """Atomically replace ``path`` with ``text`` (:class:`cardperso.outputs.AtomicFile`:
    temporary file + fsync + os.replace + directory fsync; mode 0600, an image holds keys).

    With ``tear=True`` the power is lost half-way through writing the temporary file: the
    partial temporary file stays behind (as after a real crash) and ``path`` is untouched.
    """
    data = text.encode("utf-8")
    out = AtomicFile(path, binary=True)
    if tear:
        out.fh.write(data[: len(data) // 2])
        out.fh.close()  # neither committed nor thrown away: what a power loss leaves
        return
    try:
        out.fh.write(data)
    except BaseException:
        out.abort()
        raise
    out.commit()
