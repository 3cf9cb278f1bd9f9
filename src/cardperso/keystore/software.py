"""The software key store: a human-readable JSON file, every key in clear in host memory.

For tests, samples and development. Production refuses it unless explicitly overridden
(:func:`cardperso.keystore.base.production_guard`).

File format (``cardperso-keystore/1``)::

    {
      "format": "cardperso-keystore/1",
      "_warning": "optional free text (top-level names starting with _ are comments)",
      "test_keys": true,
      "keys": {
        "gp-kmc": {"algorithm": "3DES", "value": "4041…4F", "kcv": "8BAF47",
                   "purpose": "optional free text"}
      }
    }

``algorithm`` is ``3DES`` (16 or 24 bytes), ``AES`` (16/24/32) or ``SM4`` (16); ``value`` and
``kcv`` are hex (case-insensitive). ``SM2`` entries are key pairs (the PKI's CA keys) with a
``public_key`` field and the check value ``SM3(04 || x || y)[:3]``
(:mod:`cardperso.keystore.sm2keys`). The loader verifies every check value and refuses a file whose
KCV does not match, a name that appears twice in one object (JSON would keep the last one
silently), and a key no store may hold (:func:`cardperso.keystore.base.key_problem`: single-length,
weak or K1 = K2 3DES keys, all-zero keys), naming the key and never its value. Files are written
atomically with mode 0600 (:func:`cardperso.outputs.atomic_write_text`). A file that group or
others may read is reported at load and refused in production (:meth:`SoftwareKeyStore.exposure`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from cardperso.crypto import primitives as cp
from cardperso.crypto.kcvbatch import kcvs as batch_kcvs
from cardperso.crypto.primitives import SecretKey
from cardperso.crypto.rsa import RsaKey
from cardperso.crypto.sm2 import Sm2PrivateKey, Sm2Signer, check_value
from cardperso.errors import KeyStoreError, UsageError
from cardperso.keystore.base import (
    DEFAULT_KEK,
    DEFAULT_KEK_ALGORITHM,
    CipherMode,
    DerivedKey,
    EmvCard,
    EmvSessionKey,
    GpCardKeys,
    KeyInfo,
    KeyStore,
    MacMethod,
    SessionKeyMethod,
    check_key,
    key_problem,
    reference_key_set,
)
from cardperso.keystore.oda import create_chain
from cardperso.keystore.rsakeys import RSA, RsaKeyHolder, load_rsa_entry, rsa_entry
from cardperso.keystore.sm2keys import create_pki_keys, load_sm2_entry, sm2_entry
from cardperso.outputs import atomic_write_text

log = logging.getLogger(__name__)

FORMAT: Final = "cardperso-keystore/1"

#: The KMC algorithm each built-in GP diversification method works with.
_GP_METHOD_ALGORITHM: Final[dict[str, str]] = {"emv": "3DES", "visa2": "3DES", "kdf3": "AES"}


def _parse_hex(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise KeyStoreError(f"{what} must be a hex string")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise KeyStoreError(f"{what} is not valid hex") from None


def _random_key(algorithm: str, length: int) -> bytes:
    """Fresh random key bytes (odd parity for 3DES) that :func:`key_problem` accepts."""
    while True:
        value = cp.random_bytes(length)
        if algorithm == "3DES":
            value = cp.odd_parity(value)
        if key_problem(algorithm, value) is None:
            return value


#: The largest key-store file read (about 20,000 keys): a larger file is not read whole.
MAX_STORE_BYTES: Final = 4 * 1024 * 1024


def read_small_text(path: Path, limit: int, where: str) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, or :class:`KeyStoreError`
    naming ``where``: a FIFO or a device (``/dev/zero``) would block or never end, and a larger
    file is refused before it is read whole."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise KeyStoreError(f"{where}: file not found") from None
    except OSError as exc:
        raise KeyStoreError(f"{where}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise KeyStoreError(f"{where}: cannot read (not a regular file)")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise KeyStoreError(f"{where}: cannot read ({exc.strerror})") from None
    if len(data) > limit:
        raise KeyStoreError(f"{where}: over {limit:,} bytes, not read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyStoreError(f"{where}: not a UTF-8 text file") from None


class _DuplicateName(Exception):
    def __init__(self, name: str, what: str) -> None:
        super().__init__(name)
        self.name, self.what = name, what


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` object hook: a name that appears twice in one object is an error (the
    decoder would keep the last value silently)."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            what = "key" if isinstance(value, dict) and "algorithm" in value else "field"
            raise _DuplicateName(name, what)
        out[name] = value
    return out


def parse_json_document(text: str, where: str) -> object:
    """Parse a JSON document that holds keys or key material: :class:`KeyStoreError` naming
    line and column (never the text) when it is not JSON, and naming the key or field when a
    name appears twice in one object."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        # The decoder's message names line and column only, never the document text.
        raise KeyStoreError(
            f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    except _DuplicateName as dup:
        raise KeyStoreError(f"{where}: {dup.what} {dup.name!r} appears twice") from None
    except RecursionError:
        raise KeyStoreError(f"{where}: JSON nested too deeply") from None


class _ClearSessionKey:
    """A session key in host memory (:class:`~cardperso.keystore.base.EmvSessionKey`)."""

    __slots__ = ("_sk",)

    def __init__(self, sk: bytes) -> None:
        self._sk = sk

    def mac3(self, data: bytes) -> bytes:
        return cp.mac_algorithm3(self._sk, data, padding=2)

    def encrypt_block(self, block: bytes) -> bytes:
        return cp.ecb_encrypt("3DES", self._sk, block)

    def __repr__(self) -> str:
        return "<EMV session key>"


class SoftwareKeyStore(KeyStore):
    """Keys held as :class:`SecretKey` objects, loaded from / saved to a JSON file.

    Everything is in clear in host memory while the store is loaded; ``close()`` drops the
    references (Python cannot promise to wipe the bytes).
    """

    def __init__(
        self,
        keys: Iterable[SecretKey],
        *,
        test_keys: bool,
        path: Path | None = None,
        purposes: Mapping[str, str] | None = None,
        comments: Mapping[str, str] | None = None,
        sm2_keys: Mapping[str, Sm2PrivateKey] | None = None,
        rsa_keys: Mapping[str, RsaKey] | None = None,
    ) -> None:
        self._keys: dict[str, SecretKey] = {}
        for key in keys:
            if not key.name:
                raise UsageError("every key in a key store needs a name")
            if key.name in self._keys:
                raise KeyStoreError(f"key {key.name!r} appears twice")
            self._keys[key.name] = key
        self._sm2: dict[str, Sm2PrivateKey] = dict(sm2_keys or {})
        self._rsa = RsaKeyHolder()
        self._rsa.pairs.update(rsa_keys or {})
        both = sorted((set(self._sm2) | set(self._rsa.pairs)) & set(self._keys))
        if both:
            raise KeyStoreError(f"key {both[0]!r} appears twice")
        self.test_keys = test_keys
        self.path = path
        self._purposes = dict(purposes or {})
        self._comments = dict(comments or {})

    # -- file format ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SoftwareKeyStore:
        """Load and verify a key-store file (every KCV checked; errors name the key only)."""
        p = Path(path)
        text = read_small_text(p, MAX_STORE_BYTES, f"key store {p}")
        doc = parse_json_document(text, f"key store {p}")
        store = cls.from_document(doc, where=f"key store {p}")
        store.path = p
        exposure = store.exposure()
        if not store.test_keys and exposure is not None:
            log.warning("key store %s: %s (production refuses it)", p, exposure)
        return store

    def exposure(self) -> str | None:
        """Why the store's file is open to other users (group or others may read or write it),
        or ``None``; re-read from the file each time (production checks it before a run)."""
        if self.path is None or os.name != "posix":
            return None
        try:
            mode = self.path.stat().st_mode
        except OSError as exc:
            return f"its file cannot be checked ({exc.strerror})"
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            return (
                f"its file is readable by group or others (mode {mode & 0o777:03o}): chmod 600 it"
            )
        return None

    @classmethod
    def from_document(cls, doc: object, *, where: str = "key store") -> SoftwareKeyStore:
        """Build a store from a parsed JSON document (see the module docstring)."""
        if not isinstance(doc, dict):
            raise KeyStoreError(f"{where}: the document must be a JSON object")
        if doc.get("format") != FORMAT:
            raise KeyStoreError(f"{where}: format must be {FORMAT!r}")
        test_keys = doc.get("test_keys")
        if not isinstance(test_keys, bool):
            raise KeyStoreError(f"{where}: 'test_keys' must be true or false")
        entries = doc.get("keys")
        if not isinstance(entries, dict):
            raise KeyStoreError(f"{where}: 'keys' must be an object of named keys")
        unknown = sorted(k for k in doc if k not in ("format", "test_keys", "keys"))
        unknown = [k for k in unknown if not k.startswith("_")]
        if unknown:
            raise KeyStoreError(f"{where}: unknown top-level field(s) {', '.join(unknown)}")
        keys: list[SecretKey] = []
        sm2_keys: dict[str, Sm2PrivateKey] = {}
        rsa_keys: dict[str, RsaKey] = {}
        purposes: dict[str, str] = {}
        for name, entry in entries.items():
            if isinstance(entry, dict) and entry.get("algorithm") == "SM2" and name:
                sm2_keys[name] = load_sm2_entry(where, name, entry)
            elif isinstance(entry, dict) and entry.get("algorithm") == RSA and name:
                rsa_keys[name] = load_rsa_entry(where, name, entry)
            else:
                keys.append(_load_entry(where, name, entry))
            if isinstance(entry, dict) and isinstance(entry.get("purpose"), str):
                purposes[name] = entry["purpose"]
        comments = {k: v for k, v in doc.items() if k.startswith("_") and isinstance(v, str)}
        return cls(
            keys,
            test_keys=test_keys,
            purposes=purposes,
            comments=comments,
            sm2_keys=sm2_keys,
            rsa_keys=rsa_keys,
        )

    def to_document(self) -> dict[str, Any]:
        """The JSON document, **with key values in clear** (for :meth:`save` only)."""
        keys: dict[str, dict[str, Any]] = {}
        for name in sorted([*self.names(), *self.rsa_names()]):
            if name in self._sm2:
                entry = sm2_entry(self._sm2[name])
            elif name in self._rsa.pairs:
                entry = rsa_entry(self._rsa.pairs[name])
            else:
                key = self._keys[name]
                entry = {
                    "algorithm": key.algorithm,
                    "value": key.value.hex().upper(),
                    "kcv": key.kcv().hex().upper(),
                }
            if name in self._purposes:
                entry["purpose"] = self._purposes[name]
            keys[name] = entry
        doc: dict[str, Any] = {"format": FORMAT}
        doc.update(self._comments)
        doc["test_keys"] = self.test_keys
        doc["keys"] = keys
        return doc

    def save(self, path: str | os.PathLike[str] | None = None, *, overwrite: bool = True) -> Path:
        """Write the store atomically with mode 0600; ``overwrite=False`` refuses an existing
        file. Returns the path written."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise UsageError("this key store has no file: give a path to save it")
        if not overwrite and target.exists():
            raise KeyStoreError(f"{target} exists: refusing to overwrite it (use --force)")
        text = json.dumps(self.to_document(), indent=2) + "\n"
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
        self.path = target
        return target

    # -- construction helpers ------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        spec: Mapping[str, tuple[str, int]] | None = None,
        *,
        test_keys: bool = False,
        purposes: Mapping[str, str] | None = None,
        kek_algorithm: str = DEFAULT_KEK_ALGORITHM,
    ) -> SoftwareKeyStore:
        """A store of fresh random keys: ``spec`` maps names to (algorithm, length in bytes);
        by default the reference key set (the names of the published sample keys) with a
        transport KEK of ``kek_algorithm`` (AES unless told, :func:`reference_key_set`).
        3DES keys get odd parity."""
        if spec is None:
            key_set = reference_key_set(kek_algorithm)
            spec = {name: (alg, length) for name, (alg, length, _) in key_set.items()}
            purposes = purposes or {n: p for n, (_, _, p) in key_set.items()}
        keys = [
            SecretKey(alg, _random_key(alg, length), name) for name, (alg, length) in spec.items()
        ]
        return cls(keys, test_keys=test_keys, purposes=purposes)

    # -- inventory -----------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return f"file:{self.path}" if self.path is not None else "memory"

    @property
    def is_software(self) -> bool:
        return True

    def names(self) -> list[str]:
        return sorted([*self._keys, *self._sm2])

    def rsa_names(self) -> list[str]:
        return sorted(self._rsa.pairs)

    def info(self, name: str) -> KeyInfo:
        if name in self._sm2:
            kcv = check_value(self._sm2[name].public_key)
            return KeyInfo(name, "SM2", kcv, self.location, self.test_keys)
        if name in self._rsa.pairs:
            return self._rsa.info(name, self.location, self.test_keys)
        key = self._key(name)
        return KeyInfo(name, key.algorithm, key.kcv(), self.location, self.test_keys)

    def purpose(self, name: str) -> str:
        """The free-text purpose recorded for ``name`` (empty when none)."""
        if name not in self._sm2 and name not in self._rsa.pairs:
            self._key(name)
        return self._purposes.get(name, "")

    def close(self) -> None:
        self._keys.clear()
        self._sm2.clear()
        self._rsa.pairs.clear()

    def __repr__(self) -> str:
        count = len(self._keys) + len(self._sm2) + len(self._rsa.pairs)
        return f"<SoftwareKeyStore {self.location} keys={count} test={self.test_keys}>"

    def _key(self, name: str) -> SecretKey:
        try:
            return self._keys[name]
        except KeyError:
            if name in self._sm2:
                raise KeyStoreError(
                    f"key {name!r} is an SM2 key pair; this operation needs a symmetric key"
                ) from None
            raise KeyStoreError(f"no key named {name!r} in {self.location}") from None

    # -- derivations ---------------------------------------------------------------------------

    def _out(
        self,
        algorithm: str,
        values: Sequence[bytes],
        wrap_under: str | None,
        check_values: bool = True,
    ) -> list[DerivedKey]:
        """Per-card keys as :class:`DerivedKey`: check values (3DES: one vectorized pass), then
        one ECB call under the KEK over the whole batch (every key is a whole number of KEK
        blocks)."""
        kcvs = batch_kcvs(algorithm, values) if check_values else [b""] * len(values)
        if wrap_under is None:
            return [DerivedKey(algorithm, k, None, v) for k, v in zip(kcvs, values)]
        kek = self._key(wrap_under)
        block = cp.BLOCK_SIZE[kek.algorithm]
        if any(len(v) % block for v in values):
            raise KeyStoreError(f"keys of this length cannot be wrapped under {wrap_under!r}")
        wrapped = cp.ecb_encrypt(kek.algorithm, kek.value, b"".join(values))
        out, pos = [], 0
        for k, v in zip(kcvs, values):
            out.append(DerivedKey(algorithm, k, wrap_under, wrapped[pos : pos + len(v)]))
            pos += len(v)
        return out

    def derive_emv_a(
        self, imk_name: str, cards: Sequence[EmvCard], *, wrap_under: str | None = DEFAULT_KEK
    ) -> list[DerivedKey]:
        from cardperso.crypto import emv

        imk = self._key_of(imk_name, "3DES")
        return self._out("3DES", emv.derive_icc_master_keys_a(imk.value, cards), wrap_under)

    def derive_ssse(
        self,
        master_name: str,
        factors: Sequence[bytes],
        *,
        wrap_under: str | None = DEFAULT_KEK,
        check_values: bool = True,
    ) -> list[DerivedKey]:
        from cardperso.crypto import ssse

        master = self._key(master_name)
        values = ssse.diversify(master.value, master.algorithm, factors)
        return self._out(master.algorithm, values, wrap_under, check_values)

    def diversify_gp(
        self,
        kmc_name: str,
        kdds: Sequence[bytes],
        method: str = "emv",
        *,
        wrap_under: str | None = DEFAULT_KEK,
    ) -> list[GpCardKeys]:
        from cardperso.crypto import gp

        kmc = self._key(kmc_name)
        needs = _GP_METHOD_ALGORITHM.get(method)
        if needs is not None and kmc.algorithm != needs:
            raise KeyStoreError(
                f"GP diversification {method!r} needs a {needs} KMC; {kmc_name!r} is not"
            )
        sets = gp.diversify(kmc.value, kdds, method)
        flat = [v for s in sets for v in (s.enc, s.mac, s.dek)]
        keys = self._out(kmc.algorithm, flat, wrap_under)
        return [GpCardKeys(*keys[i : i + 3]) for i in range(0, len(keys), 3)]

    # -- KEK -----------------------------------------------------------------------------------

    def wrap(self, kek_name: str, data: bytes, *, pad: bool = False) -> bytes:
        kek = self._key(kek_name)
        block = cp.BLOCK_SIZE[kek.algorithm]
        if pad:
            data = cp.pad_method2(data, block)
        elif len(data) % block:
            raise UsageError(f"data to wrap must be a multiple of {block} bytes (or use pad=True)")
        return cp.ecb_encrypt(kek.algorithm, kek.value, data)

    def unwrap(self, kek_name: str, data: bytes, *, pad: bool = False) -> bytes:
        kek = self._key(kek_name)
        block = cp.BLOCK_SIZE[kek.algorithm]
        if not data or len(data) % block:
            raise KeyStoreError(f"wrapped data under {kek_name!r} has a bad length")
        clear = cp.ecb_decrypt(kek.algorithm, kek.value, data)
        if pad:
            try:
                return cp.unpad_method2(clear)
            except UsageError:
                raise KeyStoreError(f"data unwrapped under {kek_name!r} has bad padding") from None
        return clear

    # -- using a named key ---------------------------------------------------------------------

    def _key_of(self, name: str, algorithm: str) -> SecretKey:
        key = self._key(name)
        if key.algorithm != algorithm:
            raise KeyStoreError(
                f"key {name!r} is {key.algorithm}, this operation needs {algorithm}"
            )
        return key

    def mac(self, name: str, data: bytes, method: MacMethod = "alg1") -> bytes:
        key = self._key(name)
        if method == "alg1":
            return cp.mac_algorithm1(key.algorithm, key.value, data)
        if method == "alg3":
            if key.algorithm != "3DES" or len(key.value) != 16:
                raise KeyStoreError(f"MAC algorithm 3 needs a 16-byte 3DES key, {name!r} is not")
            return cp.mac_algorithm3(key.value, data)
        if method == "cmac":
            if key.algorithm == "3DES":
                raise KeyStoreError(f"CMAC is provided for AES and SM4 keys, {name!r} is 3DES")
            return cp.cmac(key.algorithm, key.value, data)
        raise UsageError(f"unknown MAC method {method!r}")

    def encrypt(
        self, name: str, data: bytes, mode: CipherMode = "ecb", iv: bytes | None = None
    ) -> bytes:
        key = self._key(name)
        if mode == "ecb":
            if iv is not None:
                raise UsageError("ECB takes no IV")
            return cp.ecb_encrypt(key.algorithm, key.value, data)
        if mode == "cbc":
            return cp.cbc_encrypt(key.algorithm, key.value, data, iv)
        raise UsageError(f"unknown cipher mode {mode!r}")

    # -- issuer host ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _emv_session_key(
        self, imk_name: str, card: EmvCard, atc: bytes, session: SessionKeyMethod
    ) -> Iterator[EmvSessionKey]:
        from cardperso.crypto import emv

        imk = self._key_of(imk_name, "3DES")
        (mk,) = emv.derive_icc_master_keys_a(imk.value, [card])
        if session == "common":
            yield _ClearSessionKey(emv.session_key_common(mk, atc))
        elif session == "pboc":
            yield _ClearSessionKey(emv.session_key_pboc(mk, atc))
        else:
            raise UsageError(f"unknown session key method {session!r}")

    # -- lifecycle -----------------------------------------------------------------------------

    def import_key(
        self, key: SecretKey, *, test_key: bool = False, replace: bool = False
    ) -> KeyInfo:
        if not key.name:
            raise UsageError("the key to import needs a name")
        if (key.name in self._keys or key.name in self._sm2) and not replace:
            raise KeyStoreError(f"key {key.name!r} already exists in {self.location}")
        check_key(key)
        self._sm2.pop(key.name, None)
        # The file-level "test_keys" flag marks every key of a software store; ``test_key``
        # only matters for stores that mark keys one by one.
        self._keys[key.name] = key
        if self.path is not None:
            self.save()
        return self.info(key.name)

    def sm2_signer(self, name: str) -> Sm2Signer:
        try:
            return self._sm2[name]
        except KeyError:
            if name in self._keys:
                raise KeyStoreError(f"key {name!r} is not an SM2 key pair") from None
            raise KeyStoreError(f"no key named {name!r} in {self.location}") from None

    def generate_sm2_key(self, name: str, *, replace: bool = False) -> KeyInfo:
        if not name:
            raise UsageError("the key to generate needs a name")
        if (name in self._keys or name in self._sm2) and not replace:
            raise KeyStoreError(f"key {name!r} already exists in {self.location}")
        self._keys.pop(name, None)
        self._sm2[name] = Sm2PrivateKey.generate()
        if self.path is not None:
            self.save()
        return self.info(name)

    def rsa_signer(self, name: str) -> Callable[[bytes], bytes]:
        return self._rsa.signer(name, self.location)

    def rsa_public_key(self, name: str) -> tuple[bytes, int]:
        return self._rsa.public_key(name, self.location)

    def generate_rsa_key(
        self, name: str, bits: int, exponent: int = 3, *, replace: bool = False
    ) -> KeyInfo:
        if name in [*self.names(), *self.rsa_names()] and not replace:
            raise KeyStoreError(f"key {name!r} already exists in {self.location}")
        self._keys.pop(name, None)
        self._sm2.pop(name, None)
        self._rsa.generate(name, bits, exponent)
        if self.path is not None:
            self.save()
        return self.info(name)

    def generate_key(
        self, name: str, algorithm: str, length: int = 16, *, replace: bool = False
    ) -> KeyInfo:
        return self.import_key(
            SecretKey(algorithm, _random_key(algorithm, length), name),
            test_key=self.test_keys,
            replace=replace,
        )


def generate_file(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    spec: Mapping[str, tuple[str, int]] | None = None,
    kek_algorithm: str = DEFAULT_KEK_ALGORITHM,
) -> SoftwareKeyStore:
    """Write a store of fresh random keys (the reference key set unless ``spec``, then with its
    own ODA test CA and issuer key pair, :func:`cardperso.keystore.oda.create_chain`, and the
    test PKI's SM2 root and issuing CA, :func:`cardperso.keystore.sm2keys.create_pki_keys`) to
    ``path`` (mode 0600, ``test_keys`` false); refuses an existing file unless ``overwrite``."""
    store = SoftwareKeyStore.generate(spec, kek_algorithm=kek_algorithm)
    if spec is None:
        create_chain(store)
        create_pki_keys(store)
    store.save(path, overwrite=overwrite)
    return store


def _load_entry(where: str, name: object, entry: object) -> SecretKey:
    if not isinstance(name, str) or not name:
        raise KeyStoreError(f"{where}: key names must be non-empty strings")
    if not isinstance(entry, dict):
        raise KeyStoreError(f"{where}: key {name!r} must be an object")
    algorithm = entry.get("algorithm")
    if algorithm not in cp.ALGORITHMS:
        raise KeyStoreError(
            f"{where}: key {name!r} has algorithm {algorithm!r} (expected one of "
            f"{', '.join(cp.ALGORITHMS)})"
        )
    value = _parse_hex(entry.get("value"), f"{where}: key {name!r} value")
    kcv = _parse_hex(entry.get("kcv"), f"{where}: key {name!r} kcv")
    try:
        key = SecretKey(str(algorithm), value, name)
    except UsageError:
        raise KeyStoreError(f"{where}: key {name!r} has a bad length for {algorithm}") from None
    if not 2 <= len(kcv) <= 8:
        raise KeyStoreError(f"{where}: key {name!r} kcv must be 2 to 8 bytes")
    if not cp.equal(key.kcv(len(kcv)), kcv):
        raise KeyStoreError(f"{where}: key {name!r} does not match its check value")
    check_key(key, f"{where}: ")
    return key
