"""Crypto behaviour that the mutation run over cardperso.crypto found unasserted (issue 18):
the exact refusal of each misuse (the caller reads it), the edges of the KDF length checks, the
redacted reprs of session keys, the "none" diversification's algorithm choice, and the DES tables
that crypto/desvec.py builds when it is imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from cardperso.crypto import desvec, emv, gp
from cardperso.crypto import primitives as cp
from cardperso.errors import CryptogramMismatch, UsageError

K8, K16 = bytes(range(8)), bytes(range(16))
HEADER, ATC = bytes.fromhex("04DA9F79"), b"\x00\x01"

REFUSALS: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("sk-common-r", lambda: emv.session_key_common_r(K16, bytes(7)), UsageError, "session key diversification value R must be 8 bytes"),
    ("sk-pboc-key", lambda: emv.session_key_pboc(K8, ATC), UsageError, "ICC master key must be a 16-byte double-length DES key"),
    ("sk-pboc-atc", lambda: emv.session_key_pboc(K16, b"\x01"), UsageError, "ATC must be 2 bytes"),
    ("ac-key", lambda: emv.application_cryptogram(K8, b"12345678"), UsageError, "AC session key must be a 16-byte double-length DES key"),
    ("ac-verify", lambda: emv.verify_application_cryptogram(K16, b"12345678", bytes(8)), CryptogramMismatch, "application cryptogram does not verify"),
    ("ism-header", lambda: emv.issuer_script_mac_input(HEADER[:3], ATC, bytes(8), b""), UsageError, "issuer script MAC input needs a 4-byte header, ATC(2) and ARQC(8)"),
    ("ism-atc", lambda: emv.issuer_script_mac_input(HEADER, b"\x01", bytes(8), b""), UsageError, "issuer script MAC input needs a 4-byte header, ATC(2) and ARQC(8)"),
    ("ism-arqc", lambda: emv.issuer_script_mac_input(HEADER, ATC, bytes(7), b""), UsageError, "issuer script MAC input needs a 4-byte header, ATC(2) and ARQC(8)"),
    ("ism-key", lambda: emv.issuer_script_mac(K8, b"abc"), UsageError, "SMI session key must be a 16-byte double-length DES key"),
    ("ism-mac-3", lambda: emv.verify_issuer_script_mac(K16, b"abc", bytes(3)), UsageError, "issuer script MAC must be 4 to 8 bytes"),
    ("ism-mac-9", lambda: emv.verify_issuer_script_mac(K16, b"abc", bytes(9)), UsageError, "issuer script MAC must be 4 to 8 bytes"),
    ("kbkdf-0", lambda: gp.kbkdf_cmac(K16, 0), UsageError, "KBKDF output length out of range for the counter width"),
    ("kbkdf-256-blocks", lambda: gp.kbkdf_cmac(K16, 16 * 256), UsageError, "KBKDF output length out of range for the counter width"),
    ("kdf3-kmc", lambda: gp.diversify(bytes(17), [bytes(10)], "kdf3"), UsageError, "AES KMC must be 16, 24 or 32 bytes"),
    ("scp03-kdf-65536", lambda: gp.scp03_kdf(K16, 0x04, bytes(16), 0x10000), UsageError, "SCP03 KDF output length must be a positive number of bytes"),
    ("scp03-kdf-12", lambda: gp.scp03_kdf(K16, 0x04, bytes(16), 12), UsageError, "SCP03 KDF output length must be a positive number of bytes"),
    ("scp03-kdf-0", lambda: gp.scp03_kdf(K16, 0x04, bytes(16), 0), UsageError, "SCP03 KDF output length must be a positive number of bytes"),
    ("scp03-seq", lambda: gp.scp03_card_challenge(K16, bytes(2), bytes.fromhex("A000000151000000")), UsageError, "SCP03 sequence counter must be 3 bytes"),
    ("des3-key", lambda: cp.ecb_encrypt("3DES", bytes(10), bytes(8)), UsageError, "3DES key must be 8 or 16 or 24 bytes"),
    ("unpad-x", lambda: cp.unpad_method2(b"A\x80X\x00"), UsageError, "bad ISO 9797-1 method 2 padding"),
    ("unpad-empty", lambda: cp.unpad_method2(b"\x00\x00"), UsageError, "bad ISO 9797-1 method 2 padding"),
    ("pad-3", lambda: cp.mac_algorithm3(K16, b"abc", padding=3), UsageError, "unknown padding method 3"),
    ("mac3-key", lambda: cp.mac_algorithm3(K8, b"abc"), UsageError, "MAC algorithm 3 needs a 16-byte double-length DES key"),
    ("xor", lambda: cp.xor(b"ab", b"a"), UsageError, "xor operands differ in length"),
    ("weak-len", lambda: cp.is_weak_des_key(bytes(7)), UsageError, "a DES key is 8 bytes"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "call", "kind", "message"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refusal_says_what_is_wrong(
    case: str, call: Callable[[], Any], kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind) as exc:
        call()
    assert type(exc.value) is kind and str(exc.value) == message


def test_tdes_key_problems_are_named() -> None:
    a, b = bytes.fromhex("0123456789ABCDEF"), bytes.fromhex("FEDCBA9876543210")
    assert cp.tdes_key_problem(a + a) == "K1 = K2: the key is single DES"
    assert cp.tdes_key_problem(a + b + b) == "K2 = K3: the key is single DES"


def test_kdf_length_edges() -> None:
    full = gp.kbkdf_cmac(K16, 16)
    assert gp.kbkdf_cmac(K16, 1) == full[:1]  # one byte is a valid length
    assert len(gp.kbkdf_cmac(K16, 16 * 255)) == 16 * 255  # 255 blocks: the 1-byte counter's last
    assert len(gp.kbkdf_cmac(K16, 16 * 256, counter_bytes=2)) == 16 * 256
    assert len(gp.scp03_kdf(K16, 0x04, bytes(16), 8)) == 1  # 8 bits: the smallest output


def test_unpad_method2_keeps_data_bytes() -> None:
    assert cp.unpad_method2(b"AX\x80\x00\x00") == b"AX"
    assert cp.unpad_method2(b"X\x80") == b"X"


def test_issuer_script_mac_uses_padding_method_2() -> None:
    data = bytes.fromhex("04DA9F790A0012E2F6ED390FDB4755000000000104")
    assert emv.issuer_script_mac(K16, data) == cp.mac_algorithm3(K16, data, padding=2)
    assert emv.issuer_script_mac(K16, data) != cp.mac_algorithm3(K16, data, padding=1)


def test_reprs_show_check_values_only() -> None:
    assert repr(cp.SecretKey("3DES", K16)) == "<SecretKey 3DES kcv=DDADA1>"
    assert repr(cp.SecretKey("3DES", K16, "kmc")) == "<SecretKey 'kmc' 3DES kcv=DDADA1>"
    s02 = gp.scp02_session_keys(gp.StaticKeys(K16, K16, K16, "3DES"), b"\x00\x01")
    assert repr(s02) == "Scp02SessionKeys(kcv enc=11AAD3 mac=54D66F rmac=CEC743 dek=1D2E8A)"
    assert repr(s02) == (
        f"Scp02SessionKeys(kcv enc={cp.kcv('3DES', s02.enc).hex().upper()} "
        f"mac={cp.kcv('3DES', s02.mac).hex().upper()} rmac={cp.kcv('3DES', s02.rmac).hex().upper()} "
        f"dek={cp.kcv('3DES', s02.dek).hex().upper()})"
    )
    s03 = gp.scp03_session_keys(gp.StaticKeys(K16, K16, K16, "AES"), bytes(16))
    assert repr(s03) == (
        f"Scp03SessionKeys(kcv enc={cp.kcv('AES', s03.enc).hex().upper()} "
        f"mac={cp.kcv('AES', s03.mac).hex().upper()} rmac={cp.kcv('AES', s03.rmac).hex().upper()})"
    )
    assert repr(s03) == "Scp03SessionKeys(kcv enc=CB8F5A mac=9F39F3 rmac=0A1380)"


def test_none_diversification_keeps_the_master_key_and_its_algorithm() -> None:
    for kmc, algorithm in ((K8, "3DES"), (K16, "3DES"), (bytes(24), "AES"), (bytes(32), "AES")):
        (keys,) = gp.diversify(kmc, [bytes(10)], "none")
        assert (keys.enc, keys.mac, keys.dek, keys.algorithm) == (kmc, kmc, kmc, algorithm)
    # the default method is EMV CPS (the GP card manager's usual scheme)
    assert gp.diversify_one(K16, bytes(10)) == gp.diversify(K16, [bytes(10)], "emv")[0]


def test_numpy_des_tables_are_what_the_builders_make() -> None:
    """desvec builds its key-schedule, SP and permutation tables when imported (the SP 800-20
    vectors of test_crypto_desvec.py check the result). Mutation testing switches a mutant on
    only after the import, so the builders are called again here: they must reproduce the
    tables the vectors checked."""
    assert np.array_equal(desvec._schedule_tables(), desvec._KS_TABLE)
    assert np.array_equal(desvec._sp_table(), desvec._SP)
    assert np.array_equal(desvec._permutation_table(desvec._IP), desvec._IP_TABLE)
    assert np.array_equal(desvec._permutation_table(desvec._FP), desvec._FP_TABLE)
