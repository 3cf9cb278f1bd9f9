"""PKCS#11 plumbing for the key store: PIN sources, one module load and one login per token per
process, one process at a time entering a token, mechanism tables, in-token derivation, MAC
algorithm 3 with token keys, key templates.

Nothing here holds a key value: objects are token handles, data are derivation inputs.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.constants import DEFAULT

from cardperso.crypto import pad_method2
from cardperso.errors import KeyStoreError, UsageError

log = logging.getLogger("cardperso.keystore.pkcs11")

#: ``CKA_ID`` of keys imported or generated as test keys (``KeyInfo.test_key``).
TEST_KEY_ID: Final = b"cardperso:test-key"
#: Label suffixes of the MAC-algorithm-3 halves ``K1‖K1`` and ``K2‖K2`` of a 16-byte 3DES key.
COMPANIONS: Final = ("#k1k1", "#k2k2")
BLOCK: Final = {"3DES": 8, "AES": 16}
ECB: Final = {"3DES": Mechanism.DES3_ECB, "AES": Mechanism.AES_ECB}
CBC: Final = {"3DES": Mechanism.DES3_CBC, "AES": Mechanism.AES_CBC}
DERIVE: Final = {"3DES": Mechanism.DES3_ECB_ENCRYPT_DATA, "AES": Mechanism.AES_ECB_ENCRYPT_DATA}
#: Check-value blocks (cardperso.crypto.kcv conventions): DES zeros, AES 01×16.
KCV_BLOCK: Final = {"3DES": bytes(8), "AES": b"\x01" * 16}
#: Usage attributes of master keys and KEKs created by the store.
USES: Final = {
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
#
# Entering a token (C_Initialize, the slot and token-label lookup, C_Login) is done by one process
# at a time (token_entry): SoftHSM2's file store rewrites its token.object on every C_Login, and
# another process that initialises the module or reads the token's label meanwhile does not see
# the token (NoSuchToken) or fails (GeneralError). Measured on SoftHSM 2.6.1: ``keys pool
# generate`` with 4 forked workers, each initialising and logging in at once, failed 20 of 40
# fills (2 workers: 3 of 40); tests/test_pkcs11_entry.py makes that race on purpose.

_lock = threading.Lock()
_libs: dict[str, Any] = {}
#: Modules loaded before this process was forked: initialised again at their next use.
_forked: set[str] = set()
_logins: dict[tuple[str, str], tuple[Any, int]] = {}
_entry_lock = threading.RLock()
_entry_depth = 0


def entry_lock_path() -> Path:
    """The lock file that orders token entries among this user's processes (in
    ``$XDG_RUNTIME_DIR`` if set, else the temporary directory)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"cardperso-pkcs11-{os.getuid()}.lock"


def _open_entry_lock() -> int | None:
    """A new open file description of the lock file (flock excludes another description even
    in this process, and a forked child's inherited copy never counts as the child's own), or
    None when it cannot be used (then entries are ordered within this process only)."""
    path = entry_lock_path()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        log.warning(
            "PKCS#11 entry lock %s unusable (%s): processes not ordered", path, exc.strerror
        )
        return None
    if os.fstat(fd).st_uid != os.getuid():  # planted by another user: not ours to trust
        os.close(fd)
        log.warning("PKCS#11 entry lock %s belongs to another user: processes not ordered", path)
        return None
    return fd


@contextlib.contextmanager
def token_entry() -> Iterator[None]:
    """Hold the token-entry lock: threads of this process and this user's other processes wait
    (re-entrant within one thread)."""
    global _entry_depth
    with _entry_lock:
        if _entry_depth:
            _entry_depth += 1
            try:
                yield
            finally:
                _entry_depth -= 1
            return
        fd = _open_entry_lock()
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            _entry_depth = 1
            yield
        finally:
            _entry_depth = 0
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)  # for every copy a fork may have made
                os.close(fd)


def module_lib(module: str) -> Any:
    """The loaded module (C_Initialize in this process: at first use, and again at the first use
    after a fork), under :func:`token_entry`."""
    with token_entry(), _lock:
        if module in _forked:
            _forked.discard(module)
            try:
                _libs[module].reinitialize()
            except (p11e.PKCS11Error, RuntimeError, OSError) as exc:
                del _libs[module]
                raise KeyStoreError(f"cannot initialise PKCS#11 module {module}: {exc!r}") from None
        if module not in _libs:
            try:
                _libs[module] = pkcs11.lib(module)
            except (p11e.PKCS11Error, RuntimeError, OSError) as exc:
                raise KeyStoreError(f"cannot load PKCS#11 module {module}: {exc!r}") from None
        return _libs[module]


def login(module: str, token: Any, label: str, pin_source: str) -> None:
    with token_entry(), _lock:
        anchor, count = _logins.get((module, label), (None, 0))
        if anchor is None:
            pin = read_pin(pin_source)
            try:
                anchor = token.open(rw=True, user_pin=pin)
            except REFUSED as exc:
                raise KeyStoreError(f"login to token {label!r} failed: {why(exc)}") from None
            finally:
                del pin
        _logins[(module, label)] = (anchor, count + 1)


def logout(module: str, label: str) -> None:
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
REFUSED: Final = (p11e.PKCS11Error, AttributeError)


def _after_fork_in_child() -> None:
    """PKCS#11 state does not survive fork (PKCS#11 2.40 §6.6.1): a child process (prep
    ``--workers``, a key pool's workers) initialises the module again and logs in with its own
    session. Not here, at the fork, where every worker would initialise at once while its
    siblings log in: at the module's next use, under :func:`token_entry`."""
    global _lock, _entry_lock, _entry_depth
    _lock = threading.Lock()
    _entry_lock = threading.RLock()
    _entry_depth = 0
    _logins.clear()
    _forked.update(_libs)


os.register_at_fork(after_in_child=_after_fork_in_child)


def why(exc: BaseException) -> str:
    if isinstance(exc, AttributeError):
        return "the key lacks that capability"
    return type(exc).__name__


class _StringData(ctypes.Structure):
    """``CK_KEY_DERIVATION_STRING_DATA`` (PKCS#11 2.40 §2.43): a pointer and a length."""

    _fields_ = (("pData", ctypes.c_void_p), ("ulLen", ctypes.c_ulong))


def derive_param(mechanism: Mechanism, data: bytes) -> tuple[Any, bytes]:
    """The ``mechanism_param`` for ``C_DeriveKey`` with an ``*_ECB_ENCRYPT_DATA`` mechanism, and
    the buffer that must stay alive until the call returns."""
    if mechanism == Mechanism.AES_ECB_ENCRYPT_DATA:
        return None, data  # python-pkcs11 builds the structure itself for this one
    buf = ctypes.create_string_buffer(data, len(data))
    return buf, bytes(_StringData(ctypes.addressof(buf), len(data)))


def only_bytes(data: bytes | Iterator[bytes]) -> bytes:
    if not isinstance(data, bytes):  # pragma: no cover - only for iterator input
        raise UsageError("expected a bytes result from the token")
    return data


# -- token operations ------------------------------------------------------------------------------


def derive_object(
    base: Any,
    mech: Mechanism,
    data: bytes,
    key_type: KeyType,
    extractable: bool = False,
    size: int | None = None,
) -> Any:
    """A session object derived inside the token from ``base`` by ECB-encrypting ``data``
    (``CKM_DES3_ECB_ENCRYPT_DATA`` / ``CKM_AES_ECB_ENCRYPT_DATA``): sensitive, never a token
    object; ``extractable`` lets ``C_WrapKey`` export it."""
    keep, param = derive_param(mech, data)
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


def retail_mac(left: Any, right: Any, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 (padding method 2, IV 0) in the token, with 3DES keys
    ``K1‖K1`` (= single DES under K1) and ``K2‖K2``: CBC under K1, decrypt under K2, encrypt
    under K1."""
    h = only_bytes(left.encrypt(pad_method2(data, 8), mechanism=Mechanism.DES3_CBC,
                          mechanism_param=bytes(8)))[-8:]  # fmt: skip
    h = only_bytes(right.decrypt(h, mechanism=Mechanism.DES3_ECB))
    return only_bytes(left.encrypt(h, mechanism=Mechanism.DES3_ECB))


# -- ceremonies --------------------------------------------------------------------------------------


def key_template(label: str, test_key: bool) -> dict[Attribute, Any]:
    return {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.LABEL: label,
        Attribute.ID: TEST_KEY_ID if test_key else b"cardperso:key",
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.MODIFIABLE: False,
        **USES,
    }


def half_template(template: dict[Attribute, Any], suffix: str) -> dict[Attribute, Any]:
    """A MAC-algorithm-3 half: encrypt/decrypt only (no derive, wrap, sign)."""
    half = {**template, **dict.fromkeys(USES, False)}
    half.update({Attribute.LABEL: template[Attribute.LABEL] + suffix,
                 Attribute.ENCRYPT: True, Attribute.DECRYPT: True})  # fmt: skip
    return half


def generate_des2_with_halves(session: Any, template: dict[Attribute, Any]) -> None:
    """A random 16-byte 3DES key and its two MAC-algorithm-3 halves, all inside the token:
    a random DES3 seed S (session object) gives K = E_S(A ‖ B), K1‖K1 = E_S(A ‖ A) and
    K2‖K2 = E_S(B ‖ B) (ECB blocks are independent); S is destroyed with the session."""
    seed = session.generate_key(
        KeyType.DES3,
        capabilities=MechanismFlag(0),
        template={Attribute.TOKEN: False, Attribute.SENSITIVE: True,
                  Attribute.EXTRACTABLE: False, Attribute.DERIVE: True},
    )  # fmt: skip
    a, b = bytes(session.generate_random(64)), bytes(session.generate_random(64))
    while a == b:  # pragma: no cover - 2^-64
        b = bytes(session.generate_random(64))
    for suffix, data in (("", a + b), (COMPANIONS[0], a + a), (COMPANIONS[1], b + b)):
        keep, param = derive_param(Mechanism.DES3_ECB_ENCRYPT_DATA, data)
        attrs = half_template(template, suffix) if suffix else dict(template)
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
