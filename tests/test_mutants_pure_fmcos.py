"""Native-COS line protection (protocol/fmcos.py) where the mutation run of 4 December 2026
(late evening) found it unasserted (issue 18): the single-DES line MAC of an 8-byte key,
checked against OpenSSL's CBC (DES as des-ede with K1 = K2, over ``80 00..`` padded data, IV
= the challenge, first 4 bytes of the last block), and the 255-byte bound of encrypted data."""

from __future__ import annotations

import pytest

import openssl_cli as ossl
from cardperso.errors import UsageError
from cardperso.protocol import fmcos

H = bytes.fromhex
KEY8 = H("0123456789ABCDEF")


@pytest.mark.parametrize(
    ("data", "challenge"),
    [(H("04D6820008") + bytes(range(8)), H("1122334455667788")), (H("84D68200"), H("A1B2C3D4"))],
)
def test_single_des_line_mac_is_openssl_cbc(data: bytes, challenge: bytes) -> None:
    padded = data + b"\x80" + bytes((-len(data) - 1) % 8)
    iv = challenge.ljust(8, b"\x00")
    outside = ossl.cbc_mac("des-ede-cbc", KEY8 * 2, padded, iv)
    assert fmcos.line_mac("3DES", KEY8, data, challenge) == outside[:4]


def test_encrypted_data_bound() -> None:
    for n in (254, 255):
        out = fmcos.encrypt_data("3DES", KEY8 * 2, bytes(n))
        assert fmcos.decrypt_data("3DES", KEY8 * 2, out) == bytes(n)
    with pytest.raises(UsageError, match=r"^at most 255 bytes are encrypted in one command$"):
        fmcos.encrypt_data("3DES", KEY8 * 2, bytes(256))


def test_store_data_items_show_size_not_data() -> None:
    # protocol/storedata.py: a DGI's repr (logs, tracebacks) gives its number and size only
    from cardperso.protocol.storedata import DgiItem, ReceivedDgi

    secret = bytes.fromhex("0123456789ABCDEF")
    assert repr(DgiItem(0x8201, secret)) == "DgiItem(8201, 8 bytes)"
    assert repr(DgiItem(0x8201, secret, True)) == "DgiItem(8201, 8 bytes, encrypted)"
    assert repr(ReceivedDgi(0x9000, secret, False)) == "ReceivedDgi(9000, 8 bytes)"
    assert repr(ReceivedDgi(0x9000, secret, True)) == "ReceivedDgi(9000, 8 bytes, encrypted)"
