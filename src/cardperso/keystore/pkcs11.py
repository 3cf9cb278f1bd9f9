"""The PKCS#11 key store: master keys live in an HSM token and never leave it.

How this works
--------------
* Configuration names the module (``/usr/lib/softhsm/libsofthsm2.so``), the token label, a PIN
  source (``env:VAR`` or ``file:PATH``; a PIN is never accepted directly, never logged, never on
  a command line) and optionally a mapping from key names to token labels. Keys are secret-key
  objects found by ``CKA_LABEL`` (``label_prefix + name`` unless mapped).
* Master keys are created (ceremony import, :meth:`Pkcs11KeyStore.import_key`) or generated
  inside the token (:meth:`Pkcs11KeyStore.generate_key`) as ``CKA_SENSITIVE=true``,
  ``CKA_EXTRACTABLE=false`` token objects. A 16-byte 3DES key also gets two companion objects,
  ``K1‖K1`` and ``K2‖K2`` (labels ``…#k1k1``/``…#k2k2``): ISO 9797-1 MAC algorithm 3 needs single
  DES under each half, and tokens (SoftHSM2 on OpenSSL 3) refuse single-DES mechanisms, while
  3DES under ``K‖K`` *is* single DES under ``K``.
* Per-card derivations (EMV option A, SSSE 3DES, GP EMV/VISA2) are all "ECB-encrypt derivation
  data under the master key". Two modes:

  - ``strict`` (default): one ``C_DeriveKey`` (``CKM_DES3_ECB_ENCRYPT_DATA`` /
    ``CKM_AES_ECB_ENCRYPT_DATA``) per per-card key makes a session object inside the token,
    ``C_WrapKey`` exports it under the transport KEK, ``C_Encrypt`` of the check-value block gives
    its KCV; the chunk's session is then closed, which destroys every per-card object. The host
    only ever sees wrapped bytes; asking for clear keys raises :class:`KeyStoreError`.
  - ``fast``: one ``C_Encrypt`` (ECB over every card's derivation data) per master key per chunk,
    odd parity set on the host where the scheme wants it, then one ``C_Encrypt`` under the KEK
    for the whole chunk. Per-card keys are in clear in host memory between the two calls.

  Both modes give the bytes of :mod:`cardperso.keystore.software` (format ``cardperso-wrap/1``:
  ECB under the KEK), so personalization files do not depend on the store.
* python-pkcs11 packs ``CK_KEY_DERIVATION_STRING_DATA`` itself only for
  ``CKM_AES_ECB_ENCRYPT_DATA``; for the DES variant a raw ``bytes`` parameter is passed through as
  the structure, so :func:`_string_data_param` builds that structure with :mod:`ctypes` (passing
  the data itself gave ``MechanismParamInvalid``). SoftHSM2 also refuses ``CKA_VALUE_LEN`` in a
  DES derivation template (``AttributeReadOnly``), sets odd parity on derived DES keys (a
  ``CKK_GENERIC_SECRET`` derivation keeps the exact bytes), and wraps only under AES keys.
* Issuer-host operations (ARQC, ARPC, script MAC) derive the card master key and its session key
  by chained ``C_DeriveKey`` calls in a temporary session: no card key is ever in clear.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import stat
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.constants import DEFAULT

from cardperso.crypto import SecretKey, equal, odd_parity, pad_method2, unpad_method2, xor
from cardperso.crypto import kcv as soft_kcv
from cardperso.errors import CryptogramMismatch, DataError, KeyStoreError, UsageError
from cardperso.keystore.base import (
    DEFAULT_KEK,
    CipherMode,
    DerivedKey,
    EmvCard,
    GpCardKeys,
    KeyInfo,
    KeyStore,
    MacMethod,
    SessionKeyMethod,
)

log = logging.getLogger(__name__)

Mode = Literal["strict", "fast"]
MODES: Final[tuple[str, ...]] = ("strict", "fast")

#: ``CKA_ID`` of keys imported or generated as test keys (``KeyInfo.test_key``).
TEST_KEY_ID: Final = b"cardperso:test-key"
_COMPANIONS: Final = ("#k1k1", "#k2k2")
_BLOCK: Final = {"3DES": 8, "AES": 16}
_ECB: Final = {"3DES": Mechanism.DES3_ECB, "AES": Mechanism.AES_ECB}
_CBC: Final = {"3DES": Mechanism.DES3_CBC, "AES": Mechanism.AES_CBC}
_DERIVE: Final = {"3DES": Mechanism.DES3_ECB_ENCRYPT_DATA, "AES": Mechanism.AES_ECB_ENCRYPT_DATA}
_KCV_BLOCK: Final = {"3DES": bytes(8), "AES": b"\x01" * 16}
_USES: Final = {
    Attribute.ENCRYPT: True,
    Attribute.DECRYPT: True,
    Attribute.DERIVE: True,
    Attribute.WRAP: True,
    Attribute.UNWRAP: True,
    Attribute.SIGN: True,
    Attribute.VERIFY: True,
}


# -- PIN sources -----------------------------------------------------------------------------------


def read_pin(source: str) -> str:
    """The PIN named by ``source``: ``env:VAR`` (environment) or ``file:PATH`` (first line of a
    file nobody but its owner may read). The PIN itself is never accepted here: a string of any
    other form is refused without being repeated in the error (it may be a PIN typed by mistake).
    """
    kind, sep, where = source.partition(":")
    if not sep or kind not in ("env", "file") or not where:
        raise UsageError("PIN source must be 'env:VARIABLE' or 'file:PATH' (never the PIN itself)")
    if kind == "env":
        pin = os.environ.get(where)
        if not pin:
            raise KeyStoreError(f"PIN environment variable {where} is not set")
        return pin
    path = Path(where)
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreError(f"PIN file {path} is readable by others: chmod 600 it")
        pin = path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
    except OSError as exc:
        raise KeyStoreError(f"cannot read PIN file {path}: {exc.strerror}") from None
    if not pin:
        raise KeyStoreError(f"PIN file {path} is empty")
    return pin


# -- process-wide module and login bookkeeping -----------------------------------------------------
# One pkcs11.lib per module file (C_Initialize once per process) and one logged-in anchor session
# per token: PKCS#11 login state is per token per process, so a second C_Login fails and a
# C_Logout from one store would log out every other store on that token.

_lock = threading.Lock()
_libs: dict[str, Any] = {}
_logins: dict[tuple[str, str], tuple[Any, int]] = {}


def _lib(module: str) -> Any:
    with _lock:
        if module not in _libs:
            try:
                _libs[module] = pkcs11.lib(module)
            except (p11e.PKCS11Error, RuntimeError, OSError) as exc:
                raise KeyStoreError(f"cannot load PKCS#11 module {module}: {exc!r}") from None
        return _libs[module]


def _login(module: str, token: Any, label: str, pin_source: str) -> None:
    with _lock:
        anchor, count = _logins.get((module, label), (None, 0))
        if anchor is None:
            pin = read_pin(pin_source)
            try:
                anchor = token.open(rw=True, user_pin=pin)
            except _REFUSED as exc:
                raise KeyStoreError(f"login to token {label!r} failed: {_why(exc)}") from None
            finally:
                del pin
        _logins[(module, label)] = (anchor, count + 1)


def _logout(module: str, label: str) -> None:
    with _lock:
        anchor, count = _logins.pop((module, label), (None, 0))
        if anchor is None:
            return
        if count > 1:
            _logins[(module, label)] = (anchor, count - 1)
        else:
            anchor.close()


#: What a token call raises when the token refuses: a PKCS#11 error, or python-pkcs11's
#: AttributeError when the object lacks the capability (e.g. ``encrypt`` without CKA_ENCRYPT).
_REFUSED: Final = (p11e.PKCS11Error, AttributeError)


def _after_fork_in_child() -> None:
    """PKCS#11 state does not survive fork (PKCS#11 2.40 §6.6.1): a child process (prep
    ``--workers``) must initialise the module again and log in with its own session."""
    global _lock
    _lock = threading.Lock()
    _logins.clear()
    for lib in _libs.values():
        with contextlib.suppress(Exception):
            lib.reinitialize()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _why(exc: BaseException) -> str:
    if isinstance(exc, AttributeError):
        return "the key lacks that capability"
    return type(exc).__name__


class _StringData(ctypes.Structure):
    """``CK_KEY_DERIVATION_STRING_DATA`` (PKCS#11 2.40 §2.43): a pointer and a length."""

    _fields_ = (("pData", ctypes.c_void_p), ("ulLen", ctypes.c_ulong))


def _string_data_param(mechanism: Mechanism, data: bytes) -> tuple[Any, bytes]:
    """The ``mechanism_param`` for ``C_DeriveKey`` with an ``*_ECB_ENCRYPT_DATA`` mechanism, and
    the buffer that must stay alive until the call returns."""
    if mechanism == Mechanism.AES_ECB_ENCRYPT_DATA:
        return None, data  # python-pkcs11 builds the structure itself for this one
    buf = ctypes.create_string_buffer(data, len(data))
    return buf, bytes(_StringData(ctypes.addressof(buf), len(data)))


def _one(data: bytes | Iterator[bytes]) -> bytes:
    if not isinstance(data, bytes):  # pragma: no cover - only for iterator input
        raise UsageError("expected a bytes result from the token")
    return data


# -- derivation data (the inputs of the ECB step of each scheme) -----------------------------------


def emv_a_data(card: EmvCard) -> bytes:
    """EMV Book 2 A1.4.1 option A: ``Y ‖ Y ⊕ FF×8`` with Y = rightmost 16 digits of PAN ‖ PSN."""
    pan, psn = card
    if not (pan.isascii() and pan.isdigit() and 1 <= len(pan) <= 19):
        raise DataError("must be 1-19 decimal digits", field="pan")
    if not (psn.isascii() and psn.isdigit() and len(psn) == 2):
        raise DataError("must be 2 decimal digits", field="psn")
    y = bytes.fromhex((pan + psn)[-16:].rjust(16, "0"))
    return y + bytes(b ^ 0xFF for b in y)


def ssse_data(factor: bytes) -> bytes:
    """SSSE 3DES diversification: ``f ‖ ~f`` (8-byte factor)."""
    if len(factor) != 8:
        raise DataError("SSSE diversification factor must be 8 bytes", field="factor")
    return factor + bytes(b ^ 0xFF for b in factor)


def gp_data(kdd: bytes, method: str, key_id: int) -> bytes:
    """GP CPS diversification block for key ``key_id`` (01 ENC, 02 MAC, 03 DEK)."""
    if len(kdd) != 10:
        raise DataError("KDD must be 10 bytes", field="kdd")
    if method == "emv":
        base = kdd[4:10]
    elif method == "visa2":
        base = kdd[0:2] + kdd[4:8]
    else:
        raise KeyStoreError(f"GP diversification {method!r} is not a 3DES ECB derivation")
    return base + bytes((0xF0, key_id)) + base + bytes((0x0F, key_id))


def cmac_subkey1(l_block: bytes) -> bytes:
    """NIST SP 800-38B subkey K1 from ``L = AES(K, 0^128)``: ``L << 1``, then ``⊕ 87`` when the
    top bit of L was set."""
    value = int.from_bytes(l_block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(16, "big")


def kdf3_data(k1: bytes, kdd: bytes, key_id: int, blocks: int) -> bytes:
    """GP ``kdf3`` (SP 800-108 counter mode, AES-CMAC) as ECB derivation data: each PRF input
    ``i ‖ 00 00 00 id 00 ‖ KDD`` is exactly one block, and the CMAC of one whole block M is
    ``AES(K, M ⊕ K1)``; so block i of the derived key is ``AES(KMC, M_i ⊕ K1)``."""
    if len(kdd) != 10:
        raise DataError("KDD must be 10 bytes", field="kdd")
    fixed = bytes((0, 0, 0, key_id, 0)) + kdd
    return b"".join(xor(bytes((i,)) + fixed, k1) for i in range(1, blocks + 1))


def _session_key_data(atc: bytes, session: SessionKeyMethod) -> tuple[bytes, bytes]:
    """The two blocks whose encryption under the card master key are the session key halves:
    ``common`` (EMV A1.3.1) ``ATC ‖ F0|0F ‖ 00×5``; ``pboc`` ``00×6 ‖ ATC`` and
    ``00×6 ‖ ATC ⊕ FFFF``."""
    if len(atc) != 2:
        raise UsageError("ATC must be 2 bytes")
    if session == "common":
        return atc + b"\xf0" + bytes(5), atc + b"\x0f" + bytes(5)
    if session == "pboc":
        return bytes(6) + atc, bytes(6) + xor(atc, b"\xff\xff")
    raise UsageError(f"unknown session key method {session!r}")


class Pkcs11KeyStore(KeyStore):
    """Keys in a PKCS#11 token (module docstring).

    ``mode="strict"`` (default) keeps per-card keys inside the token until they are wrapped;
    ``mode="fast"`` derives a chunk with one ECB call and wraps it with another.
    ``chunk_size`` bounds the cards per token call (HSMs limit message sizes).
    ``alg3_halves`` (``True`` or a collection of key names): 16-byte 3DES keys imported or
    generated by this store also get the ``K1‖K1``/``K2‖K2`` objects MAC algorithm 3 needs.
    Off by default: each half is a single-DES-strength key, so a token user could recover a
    master key half by half (about 2^56 work each); enable it for MAC keys only.
    """

    def __init__(
        self,
        module: str,
        token_label: str,
        pin_source: str,
        labels: Mapping[str, str] | None = None,
        *,
        mode: Mode = "strict",
        label_prefix: str = "",
        chunk_size: int = 1000,
        alg3_halves: bool | Collection[str] = False,
    ) -> None:
        if mode not in MODES:
            raise UsageError(f"mode must be one of {MODES}")
        if chunk_size < 1:
            raise UsageError("chunk_size must be positive")
        self.mode: Mode = mode
        self.chunk_size = chunk_size
        self._module = module
        self._token_label = token_label
        self._labels = dict(labels or {})
        self._prefix = label_prefix
        self._alg3_halves = alg3_halves if isinstance(alg3_halves, bool) else set(alg3_halves)
        self._info: dict[str, KeyInfo] = {}
        self._cmac_k1: dict[str, bytes] = {}
        self._objects: dict[str, Any] = {}
        lib = _lib(module)
        try:
            self._token = lib.get_token(token_label=token_label)
        except _REFUSED as exc:
            raise KeyStoreError(f"token {token_label!r} not found: {_why(exc)}") from None
        _login(module, self._token, token_label, pin_source)
        self._closed = False
        try:
            self._session = self._token.open(rw=True)
        except _REFUSED as exc:
            _logout(module, token_label)
            raise KeyStoreError(f"cannot open a session: {_why(exc)}") from None
        log.info("PKCS#11 key store on token %r opened (mode %s)", token_label, mode)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Pkcs11KeyStore:
        """Build from a configuration mapping: ``module``, ``token``, ``pin`` (a PIN source),
        optional ``labels``, ``mode``, ``label_prefix``, ``chunk_size``, ``alg3_halves``."""
        try:
            return cls(
                str(config["module"]),
                str(config["token"]),
                str(config["pin"]),
                config.get("labels"),
                mode=config.get("mode", "strict"),
                label_prefix=str(config.get("label_prefix", "")),
                chunk_size=int(config.get("chunk_size", 1000)),
                alg3_halves=config.get("alg3_halves", False),
            )
        except KeyError as exc:
            raise UsageError(f"PKCS#11 key store configuration needs {exc.args[0]!r}") from None

    def __repr__(self) -> str:
        return f"<Pkcs11KeyStore {self.location} mode={self.mode}>"

    @property
    def location(self) -> str:
        return f"pkcs11:{self._token_label}"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(p11e.PKCS11Error):
            self._session.close()
        _logout(self._module, self._token_label)

    # -- objects -------------------------------------------------------------------------------

    def _label(self, name: str) -> str:
        return self._labels.get(name, self._prefix + name)

    def _find(self, session: Any, label: str) -> Any | None:
        found = list(
            session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label})
        )
        if len(found) > 1:
            raise KeyStoreError(f"token holds {len(found)} keys labelled {label!r}")
        return found[0] if found else None

    def _cached(self, label: str) -> Any | None:
        """A key object of the store's own session, looked up once (a C_FindObjects over a
        token costs ~0.4 ms in SoftHSM2, more than the operation itself)."""
        if label not in self._objects:
            obj = self._find(self._session, label)
            if obj is None:
                return None
            self._objects[label] = obj
        return self._objects[label]

    def _key(self, name: str, session: Any = None) -> Any:
        label = self._label(name)
        obj = self._cached(label) if session is None else self._find(session, label)
        if obj is None:
            raise KeyStoreError(f"no key {name!r} in {self.location}")
        return obj

    @staticmethod
    def _algorithm(obj: Any) -> str:
        kt = obj.key_type
        if kt in (KeyType.DES2, KeyType.DES3):
            return "3DES"
        if kt == KeyType.AES:
            return "AES"
        raise KeyStoreError(f"key type {kt!r} is not used by cardperso")

    def names(self) -> list[str]:
        by_label = {v: k for k, v in self._labels.items()}
        out: set[str] = set()
        for obj in self._session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.TOKEN: True}
        ):
            label = obj[Attribute.LABEL]
            if label.endswith(_COMPANIONS):
                continue
            if label in by_label:
                out.add(by_label[label])
            elif label.startswith(self._prefix) and label[len(self._prefix) :]:
                out.add(label[len(self._prefix) :])
        return sorted(out)

    def info(self, name: str) -> KeyInfo:
        if name not in self._info:
            obj = self._key(name)
            algorithm = self._algorithm(obj)
            check = self._token_kcv(obj, algorithm)
            self._info[name] = KeyInfo(
                name=name,
                algorithm=algorithm,
                kcv=check,
                location=f"{self.location}/{self._label(name)}",
                test_key=obj[Attribute.ID] == TEST_KEY_ID,
            )
        return self._info[name]

    def _token_kcv(self, obj: Any, algorithm: str) -> bytes:
        try:
            return _one(obj.encrypt(_KCV_BLOCK[algorithm], mechanism=_ECB[algorithm]))[:3]
        except _REFUSED as exc:
            raise KeyStoreError(f"check value refused by the token: {_why(exc)}") from None

    @contextlib.contextmanager
    def _scratch(self) -> Iterator[Any]:
        """A session whose objects (per-card and session keys) die when it closes."""
        try:
            session = self._token.open(rw=True)
        except _REFUSED as exc:
            raise KeyStoreError(f"cannot open a session: {_why(exc)}") from None
        try:
            yield session
        except p11e.PKCS11Error as exc:
            raise KeyStoreError(f"token refused an operation: {_why(exc)}") from None
        finally:
            session.close()

    # -- derivations ---------------------------------------------------------------------------

    def derive_emv_a(
        self, imk_name: str, cards: Sequence[EmvCard], *, wrap_under: str | None = DEFAULT_KEK
    ) -> list[DerivedKey]:
        self._require(imk_name, "3DES", "EMV option A")
        datas = [emv_a_data(card) for card in cards]
        return self._derive(imk_name, datas, "3DES", parity=True, wrap_under=wrap_under)

    def derive_ssse(
        self, master_name: str, factors: Sequence[bytes], *, wrap_under: str | None = DEFAULT_KEK
    ) -> list[DerivedKey]:
        self._require(master_name, "3DES", "SSSE diversification (SM4 is not in PKCS#11)")
        datas = [ssse_data(f) for f in factors]
        return self._derive(master_name, datas, "3DES", parity=False, wrap_under=wrap_under)

    def diversify_gp(
        self,
        kmc_name: str,
        kdds: Sequence[bytes],
        method: str = "emv",
        *,
        wrap_under: str | None = DEFAULT_KEK,
    ) -> list[GpCardKeys]:
        algorithm = self.info(kmc_name).algorithm
        needs = "AES" if method == "kdf3" else "3DES"
        if method not in ("emv", "visa2", "kdf3"):
            raise KeyStoreError(
                f"GP diversification {method!r} is not available in the PKCS#11 store "
                "(emv, visa2 and kdf3 are; 'none' would export the master key itself)"
            )
        if algorithm != needs:
            raise KeyStoreError(f"GP diversification {method!r} needs a {needs} KMC")
        out_len = None
        if method == "kdf3":
            kmc_len = self._key(kmc_name)[Attribute.VALUE_LEN]
            k1 = self._kdf3_subkey(kmc_name)
            blocks = -(-kmc_len // 16)
            datas = [kdf3_data(k1, kdd, i, blocks) for kdd in kdds for i in (1, 2, 3)]
            out_len = kmc_len
        else:
            datas = [gp_data(kdd, method, i) for kdd in kdds for i in (1, 2, 3)]
        keys = self._derive(
            kmc_name, datas, algorithm, parity=False, wrap_under=wrap_under, out_len=out_len
        )
        return [GpCardKeys(*keys[i : i + 3]) for i in range(0, len(keys), 3)]

    def _kdf3_subkey(self, kmc_name: str) -> bytes:
        """CMAC subkey K1 of the KMC, from ``L = AES(KMC, 0^128)`` computed by the token once
        (the host learns a full-length check value of the KMC, never the KMC)."""
        if kmc_name not in self._cmac_k1:
            obj = self._key(kmc_name)
            try:
                l_block = _one(obj.encrypt(bytes(16), mechanism=Mechanism.AES_ECB))
            except _REFUSED as exc:
                raise KeyStoreError(f"CMAC subkey of {kmc_name!r}: {_why(exc)}") from None
            self._cmac_k1[kmc_name] = cmac_subkey1(l_block)
        return self._cmac_k1[kmc_name]

    def _require(self, name: str, algorithm: str, what: str) -> None:
        if self.info(name).algorithm != algorithm:
            raise KeyStoreError(f"{what} needs a {algorithm} master key; {name!r} is not one")

    def _derive(
        self,
        master_name: str,
        datas: list[bytes],
        algorithm: str,
        *,
        parity: bool,
        wrap_under: str | None,
        out_len: int | None = None,
    ) -> list[DerivedKey]:
        if wrap_under is None and self.mode == "strict":
            raise KeyStoreError(
                "strict mode never gives per-card keys in clear: wrap them under a KEK"
            )
        out: list[DerivedKey] = []
        for start in range(0, len(datas), self.chunk_size):
            chunk = datas[start : start + self.chunk_size]
            if self.mode == "strict":
                assert wrap_under is not None
                out += self._derive_strict(
                    master_name, chunk, algorithm, parity, wrap_under, out_len
                )
            else:
                out += self._derive_fast(master_name, chunk, algorithm, parity, wrap_under, out_len)
        return out

    def _derive_fast(
        self,
        master_name: str,
        datas: list[bytes],
        algorithm: str,
        parity: bool,
        kek: str | None,
        out_len: int | None,
    ) -> list[DerivedKey]:
        master = self._key(master_name)
        try:
            clear = bytearray(_one(master.encrypt(b"".join(datas), mechanism=_ECB[algorithm])))
        except _REFUSED as exc:
            raise KeyStoreError(f"ECB derivation under {master_name!r}: {_why(exc)}") from None
        try:
            if parity:
                clear[:] = odd_parity(bytes(clear))
            if out_len is not None:  # kdf3 with a 24-byte KMC: truncate each key
                step = len(datas[0]) if datas else 0
                clear[:] = b"".join(clear[o : o + out_len] for o in range(0, len(clear), step))
            size = out_len or (len(datas[0]) if datas else 0)
            keys = [bytes(clear[o : o + size]) for o in range(0, len(clear), size)]
            checks = [soft_kcv(algorithm, k) for k in keys]
            if kek is None:
                return [DerivedKey(algorithm, c, None, k) for c, k in zip(checks, keys)]
            if size % _BLOCK[self.info(kek).algorithm]:
                raise KeyStoreError(f"keys of this length cannot be wrapped under {kek!r}")
            wrapped = self.wrap(kek, bytes(clear))
            return [
                DerivedKey(algorithm, c, kek, wrapped[i * size : (i + 1) * size])
                for i, c in enumerate(checks)
            ]
        finally:
            clear[:] = bytes(len(clear))  # best effort: Python may hold other copies

    def _wrap_mechanism(self, kek_obj: Any, key_len: int) -> tuple[Mechanism, bytes | None]:
        kek_alg = self._algorithm(kek_obj)
        if kek_alg == "AES" and key_len == 16:
            # one block: CBC with a zero IV is ECB, and tokens that refuse CKM_AES_ECB for
            # C_WrapKey (SoftHSM2) accept CKM_AES_CBC
            return Mechanism.AES_CBC, bytes(16)
        return _ECB[kek_alg], None

    def _derive_strict(
        self,
        master_name: str,
        datas: list[bytes],
        algorithm: str,
        parity: bool,
        kek: str,
        out_len: int | None,
    ) -> list[DerivedKey]:
        out: list[DerivedKey] = []
        with self._scratch() as session:
            master = self._key(master_name, session)
            kek_obj = self._key(kek, session)
            mech = _DERIVE[algorithm]
            usable = KeyType.AES if algorithm == "AES" else KeyType.DES2
            for data in datas:
                size = out_len or len(data)
                wrap_mech, wrap_param = self._wrap_mechanism(kek_obj, size)
                key = self._derive_one(master, mech, data, usable, True, size)
                exact = key
                if not parity and algorithm == "3DES":
                    # the token sets odd parity on DES keys: export the exact bytes from a
                    # generic-secret twin, keep the DES object for the check value
                    exact = self._derive_one(master, mech, data, KeyType.GENERIC_SECRET, True)
                try:
                    wrapped = kek_obj.wrap_key(
                        exact, mechanism=wrap_mech, mechanism_param=wrap_param
                    )
                except (p11e.MechanismInvalid, p11e.KeyNotWrappable) as exc:
                    raise KeyStoreError(
                        f"the token refuses C_WrapKey({wrap_mech.name}) under {kek!r} "
                        f"({_why(exc)}): strict mode needs a token that wraps under this KEK "
                        "(SoftHSM2 wraps under AES keys only) - use an AES transport KEK, or "
                        "mode 'fast'"
                    ) from None
                check = _one(key.encrypt(_KCV_BLOCK[algorithm], mechanism=_ECB[algorithm]))[:3]
                out.append(DerivedKey(algorithm, check, kek, wrapped))
        return out

    @staticmethod
    def _derive_one(
        base: Any,
        mech: Mechanism,
        data: bytes,
        key_type: KeyType,
        extractable: bool = False,
        size: int | None = None,
    ) -> Any:
        keep, param = _string_data_param(mech, data)
        template: dict[Attribute, Any] = {
            Attribute.TOKEN: False,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: extractable,
            Attribute.ENCRYPT: key_type != KeyType.GENERIC_SECRET,
            Attribute.DECRYPT: key_type != KeyType.GENERIC_SECRET,
            Attribute.DERIVE: key_type != KeyType.GENERIC_SECRET,
        }
        if key_type in (KeyType.DES2, KeyType.DES3):
            template[Attribute.VALUE_LEN] = DEFAULT  # SoftHSM2: read-only for DES types
        obj = base.derive_key(
            key_type,
            (size or len(data)) * 8,
            capabilities=MechanismFlag(0),
            mechanism=mech,
            mechanism_param=param,
            template=template,
        )
        del keep
        return obj

    # -- KEK -----------------------------------------------------------------------------------

    def wrap(self, kek_name: str, data: bytes, *, pad: bool = False) -> bytes:
        kek = self._key(kek_name)
        algorithm = self._algorithm(kek)
        block = _BLOCK[algorithm]
        if pad:
            data = pad_method2(data, block)
        if len(data) % block:
            raise UsageError(f"wrap: data must be whole {block}-byte blocks (or pad=True)")
        try:
            return _one(kek.encrypt(data, mechanism=_ECB[algorithm]))
        except _REFUSED as exc:
            raise KeyStoreError(f"wrap under {kek_name!r} refused: {_why(exc)}") from None

    def unwrap(self, kek_name: str, data: bytes, *, pad: bool = False) -> bytes:
        kek = self._key(kek_name)
        algorithm = self._algorithm(kek)
        if len(data) % _BLOCK[algorithm] or not data:
            raise KeyStoreError(f"wrapped data is not whole {algorithm} blocks")
        try:
            clear = _one(kek.decrypt(data, mechanism=_ECB[algorithm]))
        except _REFUSED as exc:
            raise KeyStoreError(f"unwrap under {kek_name!r} refused: {_why(exc)}") from None
        if not pad:
            return clear
        try:
            return unpad_method2(clear)
        except UsageError:
            raise KeyStoreError(f"unwrap under {kek_name!r}: bad padding (wrong KEK?)") from None

    # -- using a named key ---------------------------------------------------------------------

    def mac(self, name: str, data: bytes, method: MacMethod = "alg1") -> bytes:
        obj = self._key(name)
        algorithm = self._algorithm(obj)
        try:
            if method == "alg1":
                block = _BLOCK[algorithm]
                padded = pad_method2(data, block)
                cbc = obj.encrypt(padded, mechanism=_CBC[algorithm], mechanism_param=bytes(block))
                return _one(cbc)[-block:]
            if method == "alg3":
                if obj.key_type != KeyType.DES2:
                    raise KeyStoreError(f"MAC algorithm 3 needs a 16-byte 3DES key, not {name!r}")
                left = self._cached(self._label(name) + _COMPANIONS[0])
                right = self._cached(self._label(name) + _COMPANIONS[1])
                if left is None or right is None:
                    raise KeyStoreError(
                        f"key {name!r} has no MAC-algorithm-3 halves in the token "
                        "(import or generate it with alg3_halves)"
                    )
                return _retail_mac(left, right, data)
            if method == "cmac":
                if algorithm != "AES":
                    raise KeyStoreError(f"CMAC is provided for AES keys, {name!r} is {algorithm}")
                return bytes(obj.sign(data, mechanism=Mechanism.AES_CMAC))
        except _REFUSED as exc:
            raise KeyStoreError(f"MAC under {name!r} refused: {_why(exc)}") from None
        raise UsageError(f"unknown MAC method {method!r}")

    def encrypt(
        self, name: str, data: bytes, mode: CipherMode = "ecb", iv: bytes | None = None
    ) -> bytes:
        obj = self._key(name)
        algorithm = self._algorithm(obj)
        block = _BLOCK[algorithm]
        if len(data) % block:
            raise UsageError(f"{algorithm} data must be a multiple of {block} bytes")
        try:
            if mode == "ecb":
                if iv is not None:
                    raise UsageError("ECB takes no IV")
                return _one(obj.encrypt(data, mechanism=_ECB[algorithm]))
            if mode == "cbc":
                param = iv if iv is not None else bytes(block)
                return _one(obj.encrypt(data, mechanism=_CBC[algorithm], mechanism_param=param))
        except _REFUSED as exc:
            raise KeyStoreError(f"encryption under {name!r} refused: {_why(exc)}") from None
        raise UsageError(f"unknown cipher mode {mode!r}")

    # -- issuer host ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _session_keys(
        self, imk_name: str, card: EmvCard, atc: bytes, session: SessionKeyMethod
    ) -> Iterator[Any]:
        """(SK, SK_L‖SK_L, SK_R‖SK_R): the card's session key and its doubled halves, derived
        inside the token from the option A master key; destroyed on exit."""
        r1, r2 = _session_key_data(atc, session)
        self._require(imk_name, "3DES", "EMV session keys")
        with self._scratch() as session:
            imk = self._key(imk_name, session)
            des = Mechanism.DES3_ECB_ENCRYPT_DATA
            mk = self._derive_one(imk, des, emv_a_data(card), KeyType.DES2)
            yield (
                self._derive_one(mk, des, r1 + r2, KeyType.DES2),
                self._derive_one(mk, des, r1 + r1, KeyType.DES2),
                self._derive_one(mk, des, r2 + r2, KeyType.DES2),
            )

    def verify_arqc(
        self,
        imk_ac_name: str,
        card: EmvCard,
        atc: bytes,
        data: bytes,
        arqc: bytes,
        *,
        session: SessionKeyMethod = "common",
    ) -> None:
        with self._session_keys(imk_ac_name, card, atc, session) as (_, left, right):
            expected = _retail_mac(left, right, data)
        if not equal(expected, arqc):
            raise CryptogramMismatch("ARQC does not verify under the card's session key")

    def make_arpc(
        self,
        imk_ac_name: str,
        card: EmvCard,
        atc: bytes,
        arqc: bytes,
        *,
        arc: bytes = b"",
        csu: bytes = b"",
        prop: bytes = b"",
        method: int = 1,
        session: SessionKeyMethod = "common",
    ) -> bytes:
        if method not in (1, 2):
            raise UsageError(f"unknown ARPC method {method}")
        if len(arqc) != 8:
            raise UsageError("ARPC needs an 8-byte ARQC")
        if method == 1 and len(arc) != 2:
            raise UsageError("ARPC method 1 needs a 2-byte ARC")
        if method == 2 and (len(csu) != 4 or len(prop) > 8):
            raise UsageError("ARPC method 2 needs a 4-byte CSU and 0-8 bytes of prop. data")
        with self._session_keys(imk_ac_name, card, atc, session) as (sk, left, right):
            if method == 1:
                block = xor(arqc, arc + bytes(6))
                return _one(sk.encrypt(block, mechanism=Mechanism.DES3_ECB))
            return _retail_mac(left, right, arqc + csu + prop)[:4]

    def script_mac(
        self,
        imk_smi_name: str,
        card: EmvCard,
        atc: bytes,
        data: bytes,
        *,
        session: SessionKeyMethod = "common",
    ) -> bytes:
        with self._session_keys(imk_smi_name, card, atc, session) as (_, left, right):
            return _retail_mac(left, right, data)

    # -- ceremonies ----------------------------------------------------------------------------

    def _make_room(self, name: str, replace: bool) -> None:
        label = self._label(name)
        existing = [self._find(self._session, label + s) for s in ("", *_COMPANIONS)]
        if existing[0] is not None and not replace:
            raise KeyStoreError(f"key {name!r} already exists in {self.location}")
        for obj in existing:
            if obj is not None:
                obj.destroy()
        self._info.pop(name, None)
        self._cmac_k1.pop(name, None)
        for suffix in ("", *_COMPANIONS):
            self._objects.pop(label + suffix, None)

    def _wants_halves(self, name: str) -> bool:
        if isinstance(self._alg3_halves, bool):
            return self._alg3_halves
        return name in self._alg3_halves

    def _half_template(self, template: dict[Attribute, Any], suffix: str) -> dict[Attribute, Any]:
        """A MAC-algorithm-3 half: encrypt/decrypt only (no derive, wrap, sign)."""
        half = {**template, **dict.fromkeys(_USES, False)}
        half.update({Attribute.LABEL: template[Attribute.LABEL] + suffix,
                     Attribute.ENCRYPT: True, Attribute.DECRYPT: True})  # fmt: skip
        return half

    def delete_key(self, name: str) -> None:
        """Destroy ``name`` (and its companion objects) in the token: key retirement."""
        self._key(name)
        self._make_room(name, True)
        log.info("deleted key %r from %s", name, self.location)

    def _key_template(self, label: str, test_key: bool) -> dict[Attribute, Any]:
        return {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.LABEL: label,
            Attribute.ID: TEST_KEY_ID if test_key else b"cardperso:key",
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.MODIFIABLE: False,
            **_USES,
        }

    def import_key(
        self, key: SecretKey, *, test_key: bool = False, replace: bool = False
    ) -> KeyInfo:
        if not key.name:
            raise UsageError("a key to import needs a name")
        value = key.value
        if key.algorithm == "3DES" and len(value) in (16, 24):
            key_type = KeyType.DES2 if len(value) == 16 else KeyType.DES3
        elif key.algorithm == "AES":
            key_type = KeyType.AES
        else:
            raise KeyStoreError(
                f"the PKCS#11 store holds 16/24-byte 3DES and AES keys, not {key.algorithm} "
                f"{len(value)}-byte keys"
            )
        self._make_room(key.name, replace)
        label = self._label(key.name)
        template = self._key_template(label, test_key)
        try:
            self._session.create_object(
                {**template, Attribute.KEY_TYPE: key_type, Attribute.VALUE: value}
            )
            if key_type == KeyType.DES2 and self._wants_halves(key.name):
                for suffix, half in zip(_COMPANIONS, (value[:8], value[8:])):
                    companion = self._half_template(template, suffix)
                    self._session.create_object(
                        {**companion, Attribute.KEY_TYPE: KeyType.DES2, Attribute.VALUE: half * 2}
                    )
        except _REFUSED as exc:
            self._make_room(key.name, True)
            raise KeyStoreError(f"token refused to create {key.name!r}: {_why(exc)}") from None
        info = self.info(key.name)
        if not equal(info.kcv, key.kcv()):
            self._make_room(key.name, True)
            raise KeyStoreError(f"key {key.name!r} in the token does not match its check value")
        log.info("imported key %r (%s, KCV %s) into %s", key.name, key.algorithm,
                 info.kcv.hex().upper(), self.location)  # fmt: skip
        return info

    def generate_key(
        self, name: str, algorithm: str, length: int = 16, *, replace: bool = False
    ) -> KeyInfo:
        ok = (algorithm == "3DES" and length in (16, 24)) or (
            algorithm == "AES" and length in (16, 24, 32)
        )
        if not ok:
            raise KeyStoreError(f"cannot generate a {length}-byte {algorithm} key in the token")
        self._make_room(name, replace)
        label = self._label(name)
        template = self._key_template(label, False)
        try:
            if algorithm == "3DES" and length == 16 and self._wants_halves(name):
                self._generate_des2_with_halves(template)
            else:
                if algorithm == "AES":
                    key_type = KeyType.AES
                else:
                    key_type = KeyType.DES2 if length == 16 else KeyType.DES3
                self._session.generate_key(
                    key_type,
                    length * 8 if key_type == KeyType.AES else None,
                    capabilities=MechanismFlag(0),
                    template={k: v for k, v in template.items() if k != Attribute.CLASS},
                )
        except _REFUSED as exc:
            self._make_room(name, True)
            raise KeyStoreError(f"token refused to generate {name!r}: {_why(exc)}") from None
        info = self.info(name)
        log.info("generated key %r (%s, KCV %s) in %s", name, algorithm,
                 info.kcv.hex().upper(), self.location)  # fmt: skip
        return info

    def _generate_des2_with_halves(self, template: dict[Attribute, Any]) -> None:
        """A random 16-byte 3DES key and its two MAC-algorithm-3 halves, all inside the token:
        a random DES3 seed S (session object) gives K = E_S(A ‖ B), K1‖K1 = E_S(A ‖ A) and
        K2‖K2 = E_S(B ‖ B) (ECB blocks are independent); S is destroyed with the session."""
        with self._scratch() as session:
            seed = session.generate_key(
                KeyType.DES3,
                capabilities=MechanismFlag(0),
                template={Attribute.TOKEN: False, Attribute.SENSITIVE: True,
                          Attribute.EXTRACTABLE: False, Attribute.DERIVE: True},
            )  # fmt: skip
            a, b = bytes(session.generate_random(64)), bytes(session.generate_random(64))
            while a == b:  # pragma: no cover - 2^-64
                b = bytes(session.generate_random(64))
            for suffix, data in (("", a + b), (_COMPANIONS[0], a + a), (_COMPANIONS[1], b + b)):
                keep, param = _string_data_param(Mechanism.DES3_ECB_ENCRYPT_DATA, data)
                attrs = self._half_template(template, suffix) if suffix else dict(template)
                del attrs[Attribute.CLASS]
                attrs[Attribute.VALUE_LEN] = DEFAULT
                seed.derive_key(
                    KeyType.DES2,
                    128,
                    capabilities=MechanismFlag(0),
                    mechanism=Mechanism.DES3_ECB_ENCRYPT_DATA,
                    mechanism_param=param,
                    template=attrs,
                )
                del keep


def _retail_mac(left: Any, right: Any, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 (padding method 2, IV 0) in the token, with 3DES keys
    ``K1‖K1`` (= single DES under K1) and ``K2‖K2``: CBC under K1, decrypt under K2, encrypt
    under K1."""
    h = _one(left.encrypt(pad_method2(data, 8), mechanism=Mechanism.DES3_CBC,
                          mechanism_param=bytes(8)))[-8:]  # fmt: skip
    h = _one(right.decrypt(h, mechanism=Mechanism.DES3_ECB))
    return _one(left.encrypt(h, mechanism=Mechanism.DES3_ECB))
