"""The key-store contract: one test suite every :class:`KeyStore` implementation must pass.

Use it by subclassing :class:`KeyStoreContract` in a test module and defining a ``store`` fixture
that returns a fresh store holding the keys of :func:`contract_keys` (the published sample key
set, ``keys-sample/keys.json``) under the same names::

    class TestPkcs11Store(KeyStoreContract):
        ALGORITHMS = ("3DES", "AES")        # what the token supports (SoftHSM2 has no SM4)
        CLEAR_DERIVATION = False            # strict mode refuses wrap_under=None

        @pytest.fixture
        def store(self, softhsm_token):
            return make_pkcs11_store_with(contract_keys(), ...)

Expected values come from direct calls to :mod:`cardperso.crypto` with the known key values, so
two stores that pass produce the same bytes (wrapped per-card keys included): personalization
files are byte-identical whichever store prepared them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardperso.crypto import emv, gp, ssse
from cardperso.crypto import primitives as cp
from cardperso.crypto.primitives import SecretKey
from cardperso.errors import (
    CardPersoError,
    CryptogramMismatch,
    KeyStoreError,
    UsageError,
)
from cardperso.keystore.base import DEFAULT_KEK, DerivedKey, KeyInfo, KeyStore, SessionKeyMethod

SAMPLE_PATH = Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json"

CARDS = [("6217000012345678", "00"), ("6217000012345678901", "01"), ("99012345678901234", "45")]
FACTORS = [bytes.fromhex("1122334455667788"), bytes.fromhex("0000000000000001"), bytes(8)]
KDDS = [bytes.fromhex("00010203040506070809"), bytes.fromhex("FFEEDDCCBBAA99887766")]
ATC = bytes.fromhex("0042")
CDOL1 = bytes.fromhex("000000001000000000000000015600000000000156240101009A1B2C3D3C00")


def contract_keys() -> dict[str, SecretKey]:
    """The sample key set (name -> :class:`SecretKey`), read straight from the JSON file."""
    doc = json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))
    return {
        name: SecretKey(entry["algorithm"], bytes.fromhex(entry["value"]), name)
        for name, entry in doc["keys"].items()
        if entry["algorithm"]
        not in ("RSA", "SM2")  # ODA chain: test_keystore_oda; PKI: test_pki_demo
    }


def secret_hexes(keys: dict[str, SecretKey]) -> list[str]:
    """Upper- and lower-case hex of every key value (for leak scans)."""
    out = []
    for key in keys.values():
        out += [key.value.hex().upper(), key.value.hex()]
    return out


def assert_no_secret(text: str, keys: dict[str, SecretKey]) -> None:
    for h in secret_hexes(keys):
        assert h not in text, "a key value leaked"


class KeyStoreContract:
    """The shared suite. Subclasses define the ``store`` fixture (see the module docstring)."""

    #: Algorithms the store under test supports (tests pick keys of these algorithms only).
    ALGORITHMS: ClassVar[tuple[str, ...]] = ("3DES", "AES", "SM4")
    #: Whether ``wrap_under=None`` returns clear per-card keys (False: it must raise).
    CLEAR_DERIVATION: ClassVar[bool] = True
    #: The transport KEK the wrapping tests use (``"transport-kek-aes"`` for AES-only wrapping).
    KEK: ClassVar[str] = DEFAULT_KEK

    def _wrap_kw(self) -> dict[str, str]:
        """Derivation keyword: the default (no argument) when testing the default KEK."""
        return {} if self.KEK == DEFAULT_KEK else {"wrap_under": self.KEK}

    @pytest.fixture
    def store(self) -> KeyStore:  # pragma: no cover - always overridden
        raise NotImplementedError("define a `store` fixture holding contract_keys()")

    @pytest.fixture
    def keys(self) -> dict[str, SecretKey]:
        return contract_keys()

    def _usable(self, keys: dict[str, SecretKey]) -> dict[str, SecretKey]:
        return {n: k for n, k in keys.items() if k.algorithm in self.ALGORITHMS}

    # -- inventory -----------------------------------------------------------------------------

    def test_names_and_info(self, store: KeyStore, keys: dict[str, SecretKey]) -> None:
        names = store.names()
        assert names == sorted(names)
        for name, key in self._usable(keys).items():
            assert name in names
            info = store.info(name)
            assert isinstance(info, KeyInfo)
            assert (info.name, info.algorithm) == (name, key.algorithm)
            assert info.kcv == key.kcv() == store.kcv(name)
            assert len(info.kcv) == 3
            assert info.location and isinstance(info.test_key, bool)
            assert info.is_sample
        assert isinstance(store.location, str) and store.location

    def test_unknown_key_is_named(self, store: KeyStore) -> None:
        with pytest.raises(KeyStoreError, match="no-such-key"):
            store.info("no-such-key")
        with pytest.raises(KeyStoreError, match="no-such-kek"):
            store.wrap("no-such-kek", bytes(16))

    # -- wrap / unwrap -------------------------------------------------------------------------

    def test_wrap_is_ecb_under_the_kek(self, store: KeyStore, keys: dict[str, SecretKey]) -> None:
        kek = keys[self.KEK]
        data = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
        wrapped = store.wrap(self.KEK, data)
        assert wrapped == cp.ecb_encrypt(kek.algorithm, kek.value, data)
        assert store.unwrap(self.KEK, wrapped) == data

    def test_wrap_padded_format(self, store: KeyStore, keys: dict[str, SecretKey]) -> None:
        kek = keys[self.KEK]
        data = b"\x12\x34\x56"
        wrapped = store.wrap(self.KEK, data, pad=True)
        padded = cp.pad_method2(data, cp.BLOCK_SIZE[kek.algorithm])
        assert padded.startswith(b"\x12\x34\x56\x80\x00")
        assert wrapped == cp.ecb_encrypt(kek.algorithm, kek.value, padded)
        assert store.unwrap(self.KEK, wrapped, pad=True) == data
        # an aligned value still gets a whole padding block
        assert len(store.wrap(self.KEK, bytes(8), pad=True)) == 16

    def test_wrap_refuses_unaligned_data(self, store: KeyStore) -> None:
        with pytest.raises(UsageError, match=r"\(or use pad=True\)|\(or pad=True\)"):
            store.wrap(self.KEK, b"\x01\x02\x03")
        with pytest.raises(KeyStoreError, match=r"has a bad length|is not whole (3DES|AES) blocks"):
            store.unwrap(self.KEK, b"\x01\x02\x03")

    @settings(
        max_examples=25,
        # the same property runs once per store class; the fixture gives a fresh store
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(data=st.binary(max_size=64))
    def test_wrap_round_trip(self, store: KeyStore, data: bytes) -> None:
        assert store.unwrap(self.KEK, store.wrap(self.KEK, data, pad=True), pad=True) == data

    # -- derivations ---------------------------------------------------------------------------

    def _check_wrapped(
        self,
        store: KeyStore,
        keys: dict[str, SecretKey],
        got: DerivedKey,
        expected: bytes,
        alg: str,
    ) -> None:
        kek = keys[self.KEK]
        assert got.wrapped and got.kek == self.KEK and got.algorithm == alg
        assert got.data == cp.ecb_encrypt(kek.algorithm, kek.value, expected)
        assert got.kcv == cp.kcv(alg, expected)
        assert store.unwrap_key(got).value == expected
        assert_no_secret(repr(got), keys)

    def _check_clear(self, got: list[DerivedKey], expected: list[bytes]) -> None:
        assert [d.data for d in got] == expected
        assert all(not d.wrapped and d.kek is None for d in got)
        assert [d.secret().value for d in got] == expected

    def test_derive_emv_a(self, store: KeyStore, keys: dict[str, SecretKey]) -> None:
        for name in ("pboc-imk-ac", "pboc-imk-smi", "pboc-imk-smc"):
            expected = emv.derive_icc_master_keys_a(keys[name].value, CARDS)
            got = store.derive_emv_a(name, CARDS, **self._wrap_kw())
            assert len(got) == len(CARDS)
            for g, e in zip(got, expected):
                self._check_wrapped(store, keys, g, e, "3DES")
            self._check_clear_or_refused(
                partial(store.derive_emv_a, name, CARDS, wrap_under=None), expected
            )

    def _check_clear_or_refused(
        self, call: Callable[[], list[DerivedKey]], expected: list[bytes]
    ) -> None:
        if self.CLEAR_DERIVATION:
            self._check_clear(call(), expected)
        else:
            with pytest.raises(KeyStoreError, match="never gives per-card keys in clear"):
                call()

    def test_derive_ssse(self, store: KeyStore, keys: dict[str, SecretKey]) -> None:
        masters = [n for n, k in self._usable(keys).items() if n.startswith("ssse-")]
        assert masters
        for name in masters:
            key = keys[name]
            expected = ssse.diversify(key.value, key.algorithm, FACTORS)
            got = store.derive_ssse(name, FACTORS, **self._wrap_kw())
            for g, e in zip(got, expected, strict=True):
                self._check_wrapped(store, keys, g, e, key.algorithm)
            self._check_clear_or_refused(
                partial(store.derive_ssse, name, FACTORS, wrap_under=None), expected
            )

    def test_derive_ssse_without_check_values(
        self, store: KeyStore, keys: dict[str, SecretKey]
    ) -> None:
        """``check_values=False`` (issue 14): the same wrapped keys, no check values, and
        ``unwrap_key`` refuses a key it cannot check."""
        masters = [n for n, k in self._usable(keys).items() if n.startswith("ssse-")]
        for name in masters:
            full = store.derive_ssse(name, FACTORS, **self._wrap_kw())
            bare = store.derive_ssse(name, FACTORS, check_values=False, **self._wrap_kw())
            assert [(b.algorithm, b.kek, b.data) for b in bare] == [
                (f.algorithm, f.kek, f.data) for f in full
            ]
            assert all(b.kcv == b"" for b in bare) and all(len(f.kcv) == 3 for f in full)
            with pytest.raises(KeyStoreError, match="has no check value"):
                store.unwrap_key(bare[0], "k")

    def test_diversify_gp(self, store: KeyStore, keys: dict[str, SecretKey]) -> None:
        cases = [("gp-kmc", "emv", "3DES"), ("gp-kmc", "visa2", "3DES")]
        if "AES" in self.ALGORITHMS:
            cases.append(("gp-kmc-aes", "kdf3", "AES"))
        for kmc, method, alg in cases:
            expected = gp.diversify(keys[kmc].value, KDDS, method)
            got = store.diversify_gp(kmc, KDDS, method, **self._wrap_kw())
            assert len(got) == len(KDDS)
            for g, e in zip(got, expected):
                for part, value in ((g.enc, e.enc), (g.mac, e.mac), (g.dek, e.dek)):
                    self._check_wrapped(store, keys, part, value, alg)
            if self.CLEAR_DERIVATION:
                clear = store.diversify_gp(kmc, KDDS, method, wrap_under=None)
                assert [(c.enc.data, c.mac.data, c.dek.data) for c in clear] == [
                    (e.enc, e.mac, e.dek) for e in expected
                ]

    def test_empty_batches(self, store: KeyStore) -> None:
        kw = self._wrap_kw()
        assert store.derive_emv_a("pboc-imk-ac", [], **kw) == []
        assert store.derive_ssse("ssse-mk-3des", [], **kw) == []
        assert store.diversify_gp("gp-kmc", [], **kw) == []

    def test_batch_equals_one_by_one(self, store: KeyStore) -> None:
        cards = [(f"62170000{i:08d}", "01") for i in range(50)]
        batch = store.derive_emv_a("pboc-imk-ac", cards, **self._wrap_kw())
        singles = [store.derive_emv_a("pboc-imk-ac", [c], **self._wrap_kw())[0] for c in cards]
        assert batch == singles

    def test_derive_with_wrong_algorithm_is_refused(self, store: KeyStore) -> None:
        with pytest.raises(KeyStoreError, match="3DES") as exc:
            store.derive_emv_a("gp-kmc-aes", CARDS[:1])
        assert "'gp-kmc-aes'" in str(exc.value)

    # -- using named keys ----------------------------------------------------------------------

    def test_mac(self, store: KeyStore, keys: dict[str, SecretKey]) -> None:
        data = b"cardperso MAC test data"
        k = keys["pboc-imk-ac"]
        assert store.mac("pboc-imk-ac", data) == cp.mac_algorithm1("3DES", k.value, data)
        assert store.mac("pboc-imk-ac", data, "alg3") == cp.mac_algorithm3(k.value, data)
        if "AES" in self.ALGORITHMS:
            a = keys["gp-kmc-aes"]
            assert store.mac("gp-kmc-aes", data, "cmac") == cp.cmac("AES", a.value, data)
            assert store.mac("gp-kmc-aes", data) == cp.mac_algorithm1("AES", a.value, data)
        with pytest.raises(KeyStoreError, match=r"CMAC is provided for AES.*'pboc-imk-ac' is 3DES"):
            store.mac("pboc-imk-ac", data, "cmac")

    def test_encrypt(self, store: KeyStore, keys: dict[str, SecretKey]) -> None:
        k = keys["pboc-imk-smc"]
        data = bytes(range(16))
        iv = bytes.fromhex("0102030405060708")
        assert store.encrypt("pboc-imk-smc", data) == cp.ecb_encrypt("3DES", k.value, data)
        assert store.encrypt("pboc-imk-smc", data, "cbc") == cp.cbc_encrypt("3DES", k.value, data)
        assert store.encrypt("pboc-imk-smc", data, "cbc", iv) == cp.cbc_encrypt(
            "3DES", k.value, data, iv
        )

    # -- issuer host ---------------------------------------------------------------------------

    def _sk(self, keys: dict[str, SecretKey], name: str, session: SessionKeyMethod) -> bytes:
        (mk,) = emv.derive_icc_master_keys_a(keys[name].value, [CARDS[0]])
        if session == "pboc":
            return emv.session_key_pboc(mk, ATC)
        return emv.session_key_common(mk, ATC)

    @pytest.mark.parametrize("session", ["common", "pboc"])
    def test_verify_arqc(
        self, store: KeyStore, keys: dict[str, SecretKey], session: SessionKeyMethod
    ) -> None:
        sk = self._sk(keys, "pboc-imk-ac", session)
        arqc = emv.application_cryptogram(sk, CDOL1)
        store.verify_arqc("pboc-imk-ac", CARDS[0], ATC, CDOL1, arqc, session=session)
        bad = bytes([arqc[0] ^ 1]) + arqc[1:]
        with pytest.raises(CryptogramMismatch):
            store.verify_arqc("pboc-imk-ac", CARDS[0], ATC, CDOL1, bad, session=session)
        with pytest.raises(CryptogramMismatch):
            store.verify_arqc("pboc-imk-ac", CARDS[1], ATC, CDOL1, arqc, session=session)

    @pytest.mark.parametrize("session", ["common", "pboc"])
    def test_make_arpc(
        self, store: KeyStore, keys: dict[str, SecretKey], session: SessionKeyMethod
    ) -> None:
        sk = self._sk(keys, "pboc-imk-ac", session)
        arqc = emv.application_cryptogram(sk, CDOL1)
        arc = b"\x30\x30"
        csu = bytes.fromhex("00820000")
        got1 = store.make_arpc("pboc-imk-ac", CARDS[0], ATC, arqc, arc=arc, session=session)
        assert got1 == emv.arpc_method1(sk, arqc, arc)
        got2 = store.make_arpc(
            "pboc-imk-ac",
            CARDS[0],
            ATC,
            arqc,
            csu=csu,
            method=2,
            session=session,
        )
        assert got2 == emv.arpc_method2(sk, arqc, csu)
        with pytest.raises(UsageError, match="unknown ARPC method 3"):
            store.make_arpc("pboc-imk-ac", CARDS[0], ATC, arqc, method=3)

    @pytest.mark.parametrize("session", ["common", "pboc"])
    def test_script_mac(
        self, store: KeyStore, keys: dict[str, SecretKey], session: SessionKeyMethod
    ) -> None:
        sk = self._sk(keys, "pboc-imk-smi", session)
        arqc = bytes.fromhex("1122334455667788")
        data = emv.issuer_script_mac_input(
            bytes.fromhex("04DA9F79"), ATC, arqc, bytes.fromhex("000000010000")
        )
        got = store.script_mac("pboc-imk-smi", CARDS[0], ATC, data, session=session)
        assert got == emv.issuer_script_mac(sk, data)
        emv.verify_issuer_script_mac(sk, data, got[:4])

    # -- lifecycle -----------------------------------------------------------------------------

    def test_import_key(self, store: KeyStore) -> None:
        key = SecretKey("3DES", bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), "imported")
        info = store.import_key(key)
        assert info.name == "imported" and info.kcv == key.kcv() == bytes.fromhex("08D7B4")
        assert "imported" in store.names()
        with pytest.raises(KeyStoreError, match="imported"):
            store.import_key(key)
        # the imported key works
        assert store.encrypt("imported", bytes(8)) == cp.ecb_encrypt("3DES", key.value, bytes(8))

    def test_generate_key(self, store: KeyStore) -> None:
        info = store.generate_key("fresh-kek", "3DES", 16)
        assert info.algorithm == "3DES" and not info.is_sample
        wrapped = store.wrap("fresh-kek", bytes(16))
        assert store.unwrap("fresh-kek", wrapped) == bytes(16)
        with pytest.raises(KeyStoreError, match="'fresh-kek' already exists"):
            store.generate_key("fresh-kek", "3DES", 16)

    # -- hygiene -------------------------------------------------------------------------------

    def test_no_value_in_repr_or_errors(self, store: KeyStore, keys: dict[str, SecretKey]) -> None:
        texts = [repr(store), str(store)]
        texts += [repr(store.info(n)) for n in self._usable(keys)]
        texts += [repr(d) for d in store.derive_emv_a("pboc-imk-ac", CARDS, **self._wrap_kw())]
        texts += [repr(g) for g in store.diversify_gp("gp-kmc", KDDS, **self._wrap_kw())]
        for call in (
            lambda: store.unwrap(self.KEK, b"\x00" * 7),
            lambda: store.mac("transport-kek", b"x", "cmac"),
            lambda: store.derive_emv_a("gp-kmc-aes", CARDS),
        ):
            with pytest.raises(CardPersoError) as exc:
                call()
            texts.append(str(exc.value))
        for text in texts:
            assert_no_secret(text, keys)
