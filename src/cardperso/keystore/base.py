"""The key-store interface: every key operation of data preparation, the stations and the bank.

How this works
--------------
Callers never hold master keys. They name a key (``"pboc-imk-ac"``, ``"gp-kmc"``...) and ask a
:class:`KeyStore` to *use* it: derive per-card keys for a batch of cards, wrap or unwrap data
under a transport KEK, MAC, encrypt, compute a check value, or verify an ARQC and answer with an
ARPC. Two implementations pass one contract test suite (``tests/keystore_contract.py``):

* :class:`cardperso.keystore.software.SoftwareKeyStore` - a JSON file, every key in clear in host
  memory while it is loaded (tests, samples, development);
* ``cardperso.keystore.pkcs11`` - a PKCS#11 token (HSM); master keys never leave it.

Per-card keys and the transport KEK
-----------------------------------
The batch derivations (:meth:`KeyStore.derive_emv_a`, :meth:`KeyStore.derive_ssse`,
:meth:`KeyStore.diversify_gp`) return :class:`DerivedKey` values **wrapped under a transport
KEK** by default (``wrap_under=DEFAULT_KEK``, the key named ``"transport-kek"``). Passing
``wrap_under=None`` explicitly asks for the per-card keys in clear; a store may refuse that
(a PKCS#11 store in its strict mode raises :class:`~cardperso.errors.KeyStoreError`).

Wrapping format (``cardperso-wrap/1``, identical bytes from every store)
-----------------------------------------------------------------------
``wrapped = ECB-encrypt(KEK algorithm, KEK, plaintext)``, no IV, no length field, deterministic:

* key values (every derived key: 3DES 16/24 bytes, AES 16/32, SM4 16) are encrypted as they are,
  which is what PKCS#11 ``C_WrapKey`` with ``CKM_DES3_ECB`` / ``CKM_AES_ECB`` produces, so a
  token can wrap per-card keys without ever exposing them to the host;
* other data must be a whole number of KEK blocks, or be wrapped with ``pad=True``: then the
  plaintext is ``data ‖ 80 ‖ 00…`` (ISO/IEC 9797-1 padding method 2, always added, up to the KEK
  block size: 8 for 3DES, 16 for AES/SM4) and :meth:`KeyStore.unwrap` with ``pad=True`` removes it.

The length of an unwrapped key is known from its algorithm and is checked against the
:attr:`DerivedKey.kcv` the derivation returned.

Check values (:func:`cardperso.crypto.kcv`): DES/3DES ``E(K, 00×8)[:3]``, AES ``E(K, 01×16)[:3]``,
SM4 ``E(K, 00×16)[:3]``; an SM2 key pair ``SM3(04 ‖ x ‖ y)[:3]`` over its public key
(:func:`cardperso.crypto.sm2.check_value`).

SM2 key pairs (CA keys of the test PKI) are named like the other keys but are used only through
:meth:`KeyStore.sm2_signer` / :meth:`KeyStore.sm2_public_key`; a store that cannot hold them
(the PKCS#11 store: SoftHSM2 has no SM2 mechanism) raises :class:`KeyStoreError` there.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from cardperso.crypto import primitives as cp
from cardperso.crypto.primitives import SecretKey
from cardperso.crypto.sm2 import Sm2Signer
from cardperso.errors import CryptogramMismatch, KeyStoreError, UsageError

#: Name of the transport KEK that protects personalization files (the default ``wrap_under``).
DEFAULT_KEK: Final = "transport-kek"

#: A card for EMV derivation: (PAN digits, PAN sequence number as 2 digits, e.g. ``"01"``).
EmvCard = tuple[str, str]

#: MAC methods of :meth:`KeyStore.mac`:
#: ``"alg1"`` ISO/IEC 9797-1 MAC algorithm 1 (CBC-MAC, full block, padding method 2, IV 0) for
#: 3DES/AES/SM4; ``"alg3"`` MAC algorithm 3 (retail MAC, padding 2, 8 bytes) for 16-byte 3DES;
#: ``"cmac"`` NIST SP 800-38B CMAC (full block) for AES/SM4.
MacMethod = Literal["alg1", "alg3", "cmac"]
MAC_METHODS: Final[tuple[str, ...]] = ("alg1", "alg3", "cmac")

#: EMV session-key derivations of the issuer-host operations, both from the 2-byte ATC:
#: ``"common"`` EMV Book 2 A1.3.1 common session key with R = ATC ‖ 00×6
#: (:func:`cardperso.crypto.emv.session_key_common`); ``"pboc"`` the PBOC process key
#: ``TDES(MK)[00×6 ‖ ATC] ‖ TDES(MK)[00×6 ‖ ~ATC]`` (:func:`cardperso.crypto.emv.session_key_pboc`).
SessionKeyMethod = Literal["common", "pboc"]

#: Cipher modes of :meth:`KeyStore.encrypt` (data must be a whole number of blocks; CBC IV 0
#: unless given).
CipherMode = Literal["ecb", "cbc"]


class EmvSessionKey(Protocol):
    """A card's EMV session key (16-byte 3DES) as a store holds it: in clear or in a token."""

    def mac3(self, data: bytes) -> bytes:
        """ISO/IEC 9797-1 MAC algorithm 3, padding method 2, IV 0: 8 bytes."""
        ...

    def encrypt_block(self, block: bytes) -> bytes:
        """TDES-ECB of one 8-byte block."""
        ...


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a stored key: never its value."""

    name: str
    algorithm: str
    #: Key check value, 3 bytes (conventions in the module docstring).
    kcv: bytes
    #: Where the key lives, for people and audits: ``"file:/path/keys.json"``,
    #: ``"pkcs11:token-label"``...
    location: str
    #: True when the key belongs to a test key set (samples, generated test stores).
    test_key: bool

    @property
    def is_sample(self) -> bool:
        """True when this key's check value is one of the published sample keys."""
        return is_sample_kcv(self.kcv)


@dataclass(frozen=True, slots=True)
class DerivedKey:
    """A per-card key produced by a derivation: wrapped under a KEK, or (on request) in clear.

    ``data`` is the wrapped key (``kek`` set) or the clear key value (``kek`` is ``None``); it
    never appears in ``repr``. ``kcv`` is the check value of the clear key, so the station can
    check what it unwraps and a personalization file can be audited without unwrapping.
    """

    algorithm: str
    kcv: bytes
    kek: str | None
    data: bytes = field(repr=False)

    @property
    def wrapped(self) -> bool:
        return self.kek is not None

    def secret(self, name: str = "") -> SecretKey:
        """The clear key as a :class:`SecretKey`; :class:`UsageError` if it is wrapped."""
        if self.kek is not None:
            raise UsageError(f"key is wrapped under {self.kek!r}: unwrap it with the key store")
        return SecretKey(self.algorithm, self.data, name)


@dataclass(frozen=True, slots=True)
class GpCardKeys:
    """The three per-card GlobalPlatform static keys (ENC=01, MAC=02, DEK=03) of one card."""

    enc: DerivedKey
    mac: DerivedKey
    dek: DerivedKey


class KeyStore(abc.ABC):
    """One interface for every key operation (software file store, PKCS#11 token).

    Keys are named; errors are :class:`~cardperso.errors.KeyStoreError` naming the key and the
    reason, never a value. Batch methods take many cards and make one cipher (or HSM) call per
    master key per chunk; the one-card form is a batch of one.
    """

    # -- inventory -----------------------------------------------------------------------------

    @abc.abstractmethod
    def names(self) -> list[str]:
        """Names of the keys in the store, sorted."""

    @abc.abstractmethod
    def info(self, name: str) -> KeyInfo:
        """Algorithm, check value and location of ``name`` (:class:`KeyStoreError` if absent)."""

    def kcv(self, name: str) -> bytes:
        """3-byte check value of ``name``."""
        return self.info(name).kcv

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where this store lives (``file:…``, ``pkcs11:…``), for people and audit logs."""

    @property
    def is_software(self) -> bool:
        """True when keys are held in clear in host memory (production needs an override)."""
        return False

    def exposure(self) -> str | None:
        """Why the place that holds this store's keys is open to other users (a key-store file
        that group or others may read or write), or ``None``; production refuses such a store."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (sessions, clear key material where possible)."""

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- per-card derivations (batch) ----------------------------------------------------------

    @abc.abstractmethod
    def derive_emv_a(
        self, imk_name: str, cards: Sequence[EmvCard], *, wrap_under: str | None = DEFAULT_KEK
    ) -> list[DerivedKey]:
        """EMV Book 2 A1.4.1 option A ICC master keys (3DES, 16 bytes, odd parity), one per card,
        from the issuer master key ``imk_name``; ``cards`` are (PAN digits, PSN 2 digits)."""

    @abc.abstractmethod
    def derive_ssse(
        self,
        master_name: str,
        factors: Sequence[bytes],
        *,
        wrap_under: str | None = DEFAULT_KEK,
        check_values: bool = True,
    ) -> list[DerivedKey]:
        """Per-card SSSE keys (16 bytes, the master's algorithm), one per 8-byte factor:
        3DES ``E(M, f) ‖ E(M, ~f)``; SM4 ``E(M, f ‖ ~f)``
        (:func:`cardperso.crypto.ssse.diversify`).

        ``check_values=False`` leaves :attr:`DerivedKey.kcv` empty, for a caller that only
        passes the wrapped keys on (data preparation's SSSE DGIs carry no check values): a
        PKCS#11 store in strict mode then makes 2 token calls per key instead of 4, the others
        skip a computation. :meth:`unwrap_key` refuses such a key (it has nothing to check)."""

    @abc.abstractmethod
    def diversify_gp(
        self,
        kmc_name: str,
        kdds: Sequence[bytes],
        method: str = "emv",
        *,
        wrap_under: str | None = DEFAULT_KEK,
    ) -> list[GpCardKeys]:
        """Per-card GP static keys from the KMC ``kmc_name`` and each card's 10-byte KDD (first
        10 bytes of the INITIALIZE UPDATE response); ``method`` names a diversification of
        :func:`cardperso.crypto.gp.diversify` (``"emv"``, ``"visa2"``, ``"none"``...)."""

    # -- transport KEK -------------------------------------------------------------------------

    @abc.abstractmethod
    def wrap(self, kek_name: str, data: bytes, *, pad: bool = False) -> bytes:
        """Encrypt ``data`` under the KEK (format ``cardperso-wrap/1``, module docstring)."""

    @abc.abstractmethod
    def unwrap(self, kek_name: str, data: bytes, *, pad: bool = False) -> bytes:
        """Decrypt ``wrap`` output (at the station). The result is in clear in host memory."""

    def unwrap_key(self, derived: DerivedKey, name: str = "") -> SecretKey:
        """Unwrap a :class:`DerivedKey` (or take it as is when clear) and check its KCV."""
        if not derived.kcv:
            raise KeyStoreError(
                f"key {name or '(per-card)'} has no check value (derived with check_values=False)"
            )
        value = derived.data if derived.kek is None else self.unwrap(derived.kek, derived.data)
        try:
            key = SecretKey(derived.algorithm, value, name)
        except UsageError:
            raise KeyStoreError(f"unwrapped key {name or '(per-card)'} has a bad length") from None
        if not cp.equal(cp.kcv(derived.algorithm, value), derived.kcv):
            raise KeyStoreError(f"unwrapped key {name or '(per-card)'} does not match its KCV")
        return key

    # -- using a named key ---------------------------------------------------------------------

    @abc.abstractmethod
    def mac(self, name: str, data: bytes, method: MacMethod = "alg1") -> bytes:
        """MAC ``data`` under ``name`` (:data:`MacMethod`); padding method 2 for alg1/alg3."""

    @abc.abstractmethod
    def encrypt(
        self, name: str, data: bytes, mode: CipherMode = "ecb", iv: bytes | None = None
    ) -> bytes:
        """Encrypt whole blocks under ``name`` (ECB, or CBC with ``iv``, zero when omitted)."""

    # -- issuer host (EMV, keys derived inside the store) --------------------------------------

    @abc.abstractmethod
    def _emv_session_key(
        self, imk_name: str, card: EmvCard, atc: bytes, session: SessionKeyMethod
    ) -> AbstractContextManager[EmvSessionKey]:
        """The card's session key where the store keeps keys: its option A master key from
        ``imk_name`` (a 3DES key), then the session key from the 2-byte ``atc`` by ``session``;
        what the store made for it is dropped when the context ends."""

    def verify_arqc(
        self,
        imk_ac_name: str,
        card: EmvCard,
        atc: bytes,
        data: bytes,
        arqc: bytes,
        *,
        session: SessionKeyMethod = "pboc",
    ) -> None:
        """Derive the card's AC master key (option A) and its session key (``session``, ATC
        2 bytes), recompute the cryptogram over ``data`` (the CDOL1 data, MAC algorithm 3,
        padding 2) and compare in constant time: raises
        :class:`~cardperso.errors.CryptogramMismatch` when it does not verify."""
        with self._emv_session_key(imk_ac_name, card, atc, session) as sk:
            expected = sk.mac3(data)
        if not cp.equal(expected, arqc):
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
        session: SessionKeyMethod = "pboc",
    ) -> bytes:
        """ARPC under the card's AC session key: method 1 ``TDES(SK)[ARQC ⊕ (ARC ‖ 00×6)]``
        (8 bytes, needs ``arc``, 2 bytes) or method 2 (4 bytes, needs ``csu``, 4 bytes, and
        optional proprietary authentication data ``prop``, 0-8 bytes)."""
        if method not in (1, 2):
            raise UsageError(f"unknown ARPC method {method}")
        if len(arqc) != 8:
            raise UsageError("ARPC needs an 8-byte ARQC")
        if method == 1 and len(arc) != 2:
            raise UsageError("ARPC method 1 needs a 2-byte ARC")
        if method == 2 and (len(csu) != 4 or len(prop) > 8):
            raise UsageError("ARPC method 2 needs a 4-byte CSU and 0-8 bytes of prop. data")
        with self._emv_session_key(imk_ac_name, card, atc, session) as sk:
            if method == 1:
                return sk.encrypt_block(cp.xor(arqc, arc + bytes(6)))
            return sk.mac3(arqc + csu + prop)[:4]

    def script_mac(
        self,
        imk_smi_name: str,
        card: EmvCard,
        atc: bytes,
        data: bytes,
        *,
        session: SessionKeyMethod = "pboc",
    ) -> bytes:
        """Issuer-script MAC (8 bytes; scripts carry the leftmost 4) under the card's SMI session
        key (option A master key from ``imk_smi_name``, session key from ``atc``), MAC algorithm
        3 with padding method 2 over ``data``
        (:func:`cardperso.crypto.emv.issuer_script_mac_input`: header ‖ Lc ‖ ATC ‖ ARQC ‖ data)."""
        with self._emv_session_key(imk_smi_name, card, atc, session) as sk:
            return sk.mac3(data)

    # -- lifecycle (ceremonies) ----------------------------------------------------------------

    @abc.abstractmethod
    def import_key(
        self, key: SecretKey, *, test_key: bool = False, replace: bool = False
    ) -> KeyInfo:
        """Store ``key`` under ``key.name`` (software: saved to the file; PKCS#11: created in the
        token as a sensitive, non-extractable object). Refuses an existing name unless
        ``replace``."""

    @abc.abstractmethod
    def generate_key(
        self, name: str, algorithm: str, length: int = 16, *, replace: bool = False
    ) -> KeyInfo:
        """Create a fresh random key (inside the token for PKCS#11) and return its info."""

    # -- SM2 key pairs (the PKI's CA keys) -------------------------------------------------------

    def sm2_signer(self, name: str) -> Sm2Signer:
        """A signer for the SM2 key pair ``name`` (signatures ``r ‖ s``, GB/T 32918.2)."""
        raise KeyStoreError(f"{self.location} holds no SM2 key pairs (key {name!r})")

    def sm2_public_key(self, name: str) -> bytes:
        """The public key ``04 ‖ x ‖ y`` of the SM2 key pair ``name``."""
        return self.sm2_signer(name).public_key.to_bytes()

    def generate_sm2_key(self, name: str, *, replace: bool = False) -> KeyInfo:
        """Create a fresh SM2 key pair named ``name``."""
        raise KeyStoreError(f"{self.location} cannot hold SM2 key pairs (key {name!r})")

    # -- RSA key pairs (the ODA CA and issuer keys, cardperso.keystore.oda) ----------------------

    def rsa_names(self) -> list[str]:
        """Names of the RSA key pairs, sorted (a namespace of their own: :meth:`names` lists
        the keys the symmetric and SM2 operations use)."""
        return []

    def rsa_signer(self, name: str) -> Callable[[bytes], bytes]:
        """The raw private operation of the RSA key pair ``name`` (a block as long as the
        modulus in, its signature out; EMV's formats need no padding): in the token for
        PKCS#11 (``C_Sign`` with ``CKM_RSA_X_509``)."""
        raise KeyStoreError(f"{self.location} holds no RSA key pairs (key {name!r})")

    def rsa_public_key(self, name: str) -> tuple[bytes, int]:
        """(modulus, public exponent) of the RSA key pair ``name``."""
        raise KeyStoreError(f"{self.location} holds no RSA key pairs (key {name!r})")

    def generate_rsa_key(
        self, name: str, bits: int, exponent: int = 3, *, replace: bool = False
    ) -> KeyInfo:
        """Create a fresh RSA key pair named ``name`` (inside the token for PKCS#11)."""
        raise KeyStoreError(f"{self.location} cannot hold RSA key pairs (key {name!r})")


# -- the reference key set and the production guard -------------------------------------------

_SSSE_KEYS: Final[dict[str, str]] = {
    "ssse-mk": "SSSE card master (control) key",
    "ssse-irk": "SSSE internal authentication key",
    "ssse-ek-read": "SSSE external authentication key for reading (key 0A)",
    "ssse-uk-ef05": "SSSE update key for EF05 (key 04)",
    "ssse-uk-ef06": "SSSE update key for EF06 (key 04)",
    "ssse-uk-ef0d": "SSSE update key for EF0D (key 0D)",
    "ssse-pin-reload": "SSSE PIN reload key (key 06)",
}

#: Algorithms a transport KEK may have (16-byte keys either way). New key stores get an AES
#: ``transport-kek`` (:data:`DEFAULT_KEK_ALGORITHM`): wrapping a chunk under AES costs a small
#: fraction of 3DES (issue 14). ``cardperso keys generate --kek-algorithm 3DES`` makes a 3DES one
#: for a station or HSM that needs it; stores whose ``transport-kek`` is 3DES (the published
#: sample store among them) are read and used as before: a personalization file names its KEK's
#: algorithm and check value in its header.
KEK_ALGORITHMS: Final[tuple[str, ...]] = ("AES", "3DES")
DEFAULT_KEK_ALGORITHM: Final = "AES"

#: The keys the reference profile needs: name -> (algorithm, length in bytes, purpose), as a new
#: store gets them (``cardperso keys generate``; :func:`reference_key_set` for a 3DES transport
#: KEK). The published sample store (``keys-sample/keys.json``) has these names, with the 3DES
#: transport KEK it was published with. SSSE keys are SM4 for 3rd-generation cards; the ``-3des``
#: variants serve 2nd-generation.
REFERENCE_KEY_SET: Final[dict[str, tuple[str, int, str]]] = {
    "gp-kmc": ("3DES", 16, "issuer security domain master key (SCP02)"),
    "gp-kmc-aes": ("AES", 16, "issuer security domain master key (SCP03)"),
    "pboc-imk-ac": ("3DES", 16, "PBOC issuer master key, application cryptograms (MK-AC)"),
    "pboc-imk-smi": ("3DES", 16, "PBOC issuer master key, secure messaging integrity (MK-SMI)"),
    "pboc-imk-smc": ("3DES", 16, "PBOC issuer master key, secure messaging confidentiality"),
    **{name: ("SM4", 16, purpose) for name, purpose in _SSSE_KEYS.items()},
    **{f"{n}-3des": ("3DES", 16, f"{p}, 2nd generation") for n, p in _SSSE_KEYS.items()},
    "transport-kek": (
        DEFAULT_KEK_ALGORITHM,
        16,
        "transport KEK protecting personalization files",
    ),
    "transport-kek-aes": ("AES", 16, "AES transport KEK (for stores and HSMs that wrap under AES)"),
}


def reference_key_set(
    kek_algorithm: str = DEFAULT_KEK_ALGORITHM,
) -> dict[str, tuple[str, int, str]]:
    """:data:`REFERENCE_KEY_SET` with a ``transport-kek`` of ``kek_algorithm`` (one of
    :data:`KEK_ALGORITHMS`; :class:`UsageError` otherwise)."""
    if kek_algorithm not in KEK_ALGORITHMS:
        raise UsageError(
            f"transport KEK algorithm must be one of {', '.join(KEK_ALGORITHMS)}, "
            f"not {kek_algorithm!r}"
        )
    _, length, purpose = REFERENCE_KEY_SET[DEFAULT_KEK]
    return {**REFERENCE_KEY_SET, DEFAULT_KEK: (kek_algorithm, length, purpose)}


def key_algorithms(name: str) -> tuple[str, ...]:
    """The algorithms a key named ``name`` may have: both of :data:`KEK_ALGORITHMS` for the
    transport KEK, the one of :data:`KNOWN_KEYS` for another known name, any for other names
    (empty tuple)."""
    if name == DEFAULT_KEK:
        return KEK_ALGORITHMS
    known = KNOWN_KEYS.get(name)
    return (known[0],) if known is not None else ()


#: Keys that another party holds and hands over by key ceremony (``cardperso keys
#: import-components``): names the tools know, which ``cardperso keys generate`` never invents.
#: ``gp-transport`` is the card vendor's transport key, the key the blank cards' issuer security
#: domain is opened with; it is not the issuer's ``gp-kmc``, which per-card keys derive from.
CEREMONY_KEY_SET: Final[dict[str, tuple[str, int, str]]] = {
    "gp-transport": ("3DES", 16, "card vendor's transport key of the blank cards (SCP02)"),
    "gp-transport-aes": ("AES", 16, "card vendor's transport key of the blank cards (SCP03)"),
    "native-transport": ("SM4", 16, "card vendor's transport master of the native SM4 blanks"),
    "native-transport-3des": (
        "3DES",
        16,
        "card vendor's transport master of the native 3DES blanks",
    ),
    "kek-exchange": ("3DES", 16, "key-exchange key shared by the card factory and the bank"),
}

#: Every key name the tools know: the reference set and the ceremony keys (one list, here).
KNOWN_KEYS: Final[dict[str, tuple[str, int, str]]] = {**REFERENCE_KEY_SET, **CEREMONY_KEY_SET}

#: Check values (3 bytes, upper-case hex) of the published sample keys in ``keys-sample/keys.json``
#: by name. Production refuses any key with one of these check values, whatever its name.
SAMPLE_KCVS: Final[dict[str, str]] = {
    "gp-kmc": "8BAF47",
    "gp-kmc-aes": "504A77",
    "pboc-imk-ac": "2EF33D",
    "pboc-imk-smc": "9A3AA8",
    "pboc-imk-smi": "DCEB4F",
    "ssse-ek-read": "D547E5",
    "ssse-ek-read-3des": "30517D",
    "ssse-irk": "1AF931",
    "ssse-irk-3des": "81D8DC",
    "ssse-mk": "0C31A3",
    "ssse-mk-3des": "20D4C0",
    "ssse-pin-reload": "064143",
    "ssse-pin-reload-3des": "55F933",
    "ssse-uk-ef05": "B08A35",
    "ssse-uk-ef05-3des": "77F053",
    "ssse-uk-ef06": "4C3EF0",
    "ssse-uk-ef06-3des": "36C8DD",
    "ssse-uk-ef0d": "FB069B",
    "ssse-uk-ef0d-3des": "E911BF",
    "transport-kek": "C68821",
    "transport-kek-aes": "2C80DE",
    # the sample transport keys of simulated blanks are the GlobalPlatform test key 40..4F
    "gp-transport": "8BAF47",
    "gp-transport-aes": "504A77",
    "native-transport": "8EB0E2",
    "native-transport-3des": "8BAF47",
    # the ODA sample chain (RSA; check value SHA-1(modulus ‖ exponent)[:3], keystore/rsakeys.py)
    "oda-ca-A000000333-F1": "E6DAC5",
    "oda-issuer": "C501D1",
    # the test PKI's sample CA keys (SM2; check value SM3(04 ‖ x ‖ y)[:3], keystore/sm2keys.py)
    "pki-issuing-ca": "A47914",
    "pki-root": "51E317",
}


def is_sample_kcv(kcv: bytes) -> bool:
    """True when ``kcv`` is the check value of one of the published sample keys."""
    return kcv.hex().upper() in _SAMPLE_KCV_SET


#: Check values of the published sample BANK keys (``keys-sample/bank-keys.json``).
SAMPLE_BANK_KCVS: Final[dict[str, str]] = {
    "bank-kmc": "94286A",
    "bank-ssd-transport-kmc": "382B71",
    "kek-exchange": "00BE84",
    "pboc-imk-ac": "C06B9E",
    "pboc-imk-smc": "ED1A6C",
    "pboc-imk-smi": "578EF9",
    "transport-kek": "BC9524",
}

_SAMPLE_KCV_SET: Final[frozenset[str]] = frozenset(SAMPLE_KCVS.values()) | frozenset(
    SAMPLE_BANK_KCVS.values()
)


def production_guard(store: KeyStore, *, allow_software_store: bool = False) -> None:
    """Refuse a key store that must not serve a production run.

    Raises :class:`KeyStoreError` when the store is a software store unless
    ``allow_software_store`` (the caller logs that override), when any key is one of the
    published sample keys (recognised by its check value) or marked as a test key, and when the
    store's file is open to group or others (:meth:`KeyStore.exposure`), whatever the override.
    """
    if store.is_software and not allow_software_store:
        raise KeyStoreError(
            f"production refuses a software key store ({store.location}); "
            "use the HSM store or pass the explicit override"
        )
    for name in [*store.names(), *store.rsa_names()]:
        info = store.info(name)
        if info.is_sample:
            raise KeyStoreError(f"production refuses key {name!r}: it is a published sample key")
        if info.test_key:
            raise KeyStoreError(f"production refuses key {name!r}: it is marked as a test key")
    exposure = store.exposure()
    if exposure is not None:
        raise KeyStoreError(f"production refuses key store {store.location}: {exposure}")


# -- key hygiene --------------------------------------------------------------------------------


def key_problem(algorithm: str, value: bytes) -> str | None:
    """Why a key of ``algorithm`` with bytes ``value`` must not be held by a key store, or
    ``None``: a 3DES key that is single-length, has a weak or semi-weak part, or has K1 = K2
    (K2 = K3) (:func:`cardperso.crypto.primitives.tdes_key_problem`); any key of all zeros.
    The answer never shows key bits."""
    if algorithm == "3DES":
        problem = cp.tdes_key_problem(value)
        if problem is not None:
            return problem
    if not any(value):
        return "it is all zeros"
    return None


def check_key(key: SecretKey, where: str = "") -> None:
    """Raise :class:`KeyStoreError` naming ``key`` (never its value) when :func:`key_problem`
    refuses it; ``where`` prefixes the message (e.g. ``"key store keys.json: "``)."""
    problem = key_problem(key.algorithm, key.value)
    if problem is not None:
        raise KeyStoreError(f"{where}key {key.name!r} is refused: {problem}")
