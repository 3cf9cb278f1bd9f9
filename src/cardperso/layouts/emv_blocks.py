"""The recovered blocks of EMV / PBOC offline data authentication, as Construct layouts.

Each certificate or signed-data object, once the terminal applies the signer's public key, is a
block ``6A ‖ format ‖ fields ‖ SHA-1 ‖ BC`` as long as the signer's modulus. The fixed fields
are a Construct struct; the variable part (key or padding, hash, trailer) is split off by the
model conversion, so one layout serves every key size. The signing and checking rules live in
:mod:`cardperso.layouts.emv_cert`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import construct as cs

from cardperso.errors import DecodeError
from cardperso.layouts.base import Layout

__all__ = [
    "HASH_SHA1",
    "HEADER",
    "ICC_CERT",
    "ISSUER_CERT",
    "PAD",
    "PK_RSA",
    "SDAD",
    "SSAD",
    "TRAILER",
    "IccCertData",
    "IssuerCertData",
    "SdadData",
    "SsadData",
]

HEADER = 0x6A
TRAILER = 0xBC
HASH_SHA1 = 0x01
PK_RSA = 0x01
PAD = 0xBB
_HASH = 20

# --- layouts of the recovered blocks ---------------------------------------------------------


def _split_rest(container: Mapping[str, Any], fixed: int) -> tuple[bytes, bytes]:
    """(variable field, hash) of ``rest``; ``fixed`` is the length of the fields before it."""
    rest = bytes(container["rest"])
    if len(rest) < _HASH + 1 or rest[-1] != TRAILER:
        raise DecodeError(
            "recovered block: no hash and trailer BC at the end",
            offset=fixed + max(len(rest) - 1, 0),
            field="trailer",
        )
    return rest[: -_HASH - 1], rest[-_HASH - 1 : -1]


@dataclass(frozen=True, slots=True)
class IssuerCertData:
    """A recovered issuer public-key certificate (EMV Book 2 table 6), header to hash."""

    issuer_id: bytes
    expiry: bytes
    serial: bytes
    hash_algorithm: int
    pk_algorithm: int
    pk_length: int
    exponent_length: int
    key_part: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class IccCertData:
    """A recovered ICC public-key certificate (EMV Book 2 table 14)."""

    pan: bytes
    expiry: bytes
    serial: bytes
    hash_algorithm: int
    pk_algorithm: int
    pk_length: int
    exponent_length: int
    key_part: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class SsadData:
    """Recovered signed static application data (EMV Book 2 table 7)."""

    hash_algorithm: int
    dac: bytes
    pad: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class SdadData:
    """Recovered signed dynamic application data (EMV Book 2 table 17)."""

    hash_algorithm: int
    dynamic_data: bytes
    pad: bytes
    hash: bytes


def _key_cert(fmt: int, id_field: str, id_len: int) -> Any:
    return cs.Struct(
        "header" / cs.Const(bytes([HEADER])),
        "format" / cs.Const(bytes([fmt])),
        id_field / cs.Bytes(id_len),
        "expiry" / cs.Bytes(2),
        "serial" / cs.Bytes(3),
        "hash_algorithm" / cs.Int8ub,
        "pk_algorithm" / cs.Int8ub,
        "pk_length" / cs.Int8ub,
        "exponent_length" / cs.Int8ub,
        "rest" / cs.GreedyBytes,
    )


def _key_cert_layout(
    name: str,
    spec: str,
    fmt: int,
    model: Any,
    id_field: str,
    id_len: int,
    vectors: Iterable[tuple[Any, bytes]],
) -> Layout[Any]:
    names = [f for f in model.__slots__ if f not in ("key_part", "hash")]

    def to_model(c: Mapping[str, Any]) -> Any:
        key_part, digest = _split_rest(c, 11 + id_len)
        return model(**{n: c[n] for n in names}, key_part=key_part, hash=digest)

    def from_model(m: Any) -> Mapping[str, Any]:
        out = {n: getattr(m, n) for n in names}
        out["rest"] = m.key_part + m.hash + bytes([TRAILER])
        return out

    return Layout(
        name,
        spec,
        _key_cert(fmt, id_field, id_len),
        model,
        vectors=vectors,
        to_model=to_model,
        from_model=from_model,
    )


_H = bytes.fromhex

# Vector: the issuer certificate 90 of a public American Express card dump (the unit test
# IssuerPublicKeyDecoderTest of github.com/shham12/nfc_emv_adaptor), recovered with the
# published live CAPK A000000025 C9 (1984 bits, e = 3); its hash verifies with 92 and 9F32 03
# (tests/test_emv_cert.py recomputes it).
_AMEX_ISSUER_KEY = _H(
    "CAFACCC90D61D0469BFE90FB93EC91CFC778A4BAB22377D361D7FA536D85AB3D8546B26CE145A096462BF0824777"
    "3FDAA4818D5B90789A4DFDDC148D520AA75C3775E4F2E0CD240536FDF05E90DD0C6CB2EC25B85B4480F64B6852C7"
    "B71D152C461D18E25571FE6C2069840EFBCDEF880F7EF8B0FB7C3E2B89C95F003F977A337B82C10EFF4E27A55A75"
    "7C62"
)
_AMEX_ISSUER_HASH = _H("724104435D977294B57E05D7B9F6DE84D80EF4C4")
ISSUER_CERT: Layout[IssuerCertData] = _key_cert_layout(
    "emv.issuer_certificate",
    "EMV 4.3 Book 2 table 6; JR/T 0025.7 table 5",
    0x02,
    IssuerCertData,
    "issuer_id",
    4,
    [
        (
            IssuerCertData(
                _H("374245FF"),
                _H("1224"),
                _H("010007"),
                1,
                1,
                0xB0,
                1,
                _AMEX_ISSUER_KEY,
                _AMEX_ISSUER_HASH,
            ),
            _H("6A02374245FF12240100070101B001") + _AMEX_ISSUER_KEY + _AMEX_ISSUER_HASH + b"\xbc",
        )
    ],
)

# Vector: the ICC certificate 9F46 of the same dump, recovered with the issuer key above
# (112-byte ICC modulus, padded with BB to N_I - 42 = 134 bytes).
_AMEX_ICC_KEY = (
    _H(
        "8DF7D431AE31D7724A18C6017238DC8ADFF5940EB11D000055AF7BAEBC447A06A3EB0A1E4A0A876F3C00FEFA00BC"
        "6CC7E6775BB6D721C4E524B6D0687D1D3AC1EDBC66C24A325ABDF40F67F4417CE44BEC81596E64757B43AC6D8168"
        "0959995532344E2FD03CB46D15013AD1DD3D2A3F"
    )
    + bytes([PAD]) * 22
)
_AMEX_ICC_HASH = _H("694F215EBFC5AB804B0A77FAD3DB3D90B5524EEB")
ICC_CERT: Layout[IccCertData] = _key_cert_layout(
    "emv.icc_certificate",
    "EMV 4.3 Book 2 table 14; JR/T 0025.7 table 13",
    0x04,
    IccCertData,
    "pan",
    10,
    [
        (
            IccCertData(
                _H("374245002751005FFFFF"),
                _H("1224"),
                _H("000001"),
                1,
                1,
                0x70,
                1,
                _AMEX_ICC_KEY,
                _AMEX_ICC_HASH,
            ),
            _H("6A04374245002751005FFFFF122400000101017001")
            + _AMEX_ICC_KEY
            + _AMEX_ICC_HASH
            + b"\xbc",
        )
    ],
)


def _ssad_to_model(c: Mapping[str, Any]) -> SsadData:
    pad, digest = _split_rest(c, 5)
    return SsadData(c["hash_algorithm"], bytes(c["dac"]), pad, digest)


SSAD: Layout[SsadData] = Layout(
    "emv.signed_static_data",
    "EMV 4.3 Book 2 table 7; JR/T 0025.7 table 7",
    cs.Struct(
        "header" / cs.Const(bytes([HEADER])),
        "format" / cs.Const(b"\x03"),
        "hash_algorithm" / cs.Int8ub,
        "dac" / cs.Bytes(2),
        "rest" / cs.GreedyBytes,
    ),
    SsadData,
    to_model=_ssad_to_model,
    from_model=lambda m: {
        "hash_algorithm": m.hash_algorithm,
        "dac": m.dac,
        "rest": m.pad + m.hash + bytes([TRAILER]),
    },
    # A 64-byte block (N_I = 64: pad 38 BB), DAC DAC1; the field positions are table 7's.
    vectors=[
        (
            SsadData(1, _H("DAC1"), b"\xbb" * 38, bytes(range(20))),
            _H("6A0301DAC1") + b"\xbb" * 38 + bytes(range(20)) + b"\xbc",
        )
    ],
)


def _sdad_to_model(c: Mapping[str, Any]) -> SdadData:
    body, digest = _split_rest(c, 4)
    size = c["length"]
    if size > len(body):
        raise DecodeError(
            "signed dynamic data: ICC dynamic data longer than the block", field="length"
        )
    return SdadData(c["hash_algorithm"], body[:size], body[size:], digest)


SDAD: Layout[SdadData] = Layout(
    "emv.signed_dynamic_data",
    "EMV 4.3 Book 2 table 17; JR/T 0025.7 table 16",
    cs.Struct(
        "header" / cs.Const(bytes([HEADER])),
        "format" / cs.Const(b"\x05"),
        "hash_algorithm" / cs.Int8ub,
        "length" / cs.Int8ub,
        "rest" / cs.GreedyBytes,
    ),
    SdadData,
    to_model=_sdad_to_model,
    from_model=lambda m: {
        "hash_algorithm": m.hash_algorithm,
        "length": len(m.dynamic_data),
        "rest": m.dynamic_data + m.pad + m.hash + bytes([TRAILER]),
    },
    # DDA, N_IC = 64: ICC dynamic data 03 ‖ 3-byte dynamic number, pad 64 - 4 - 25 = 35 BB.
    vectors=[
        (
            SdadData(1, _H("03A1B2C3"), b"\xbb" * 35, bytes(20)),
            _H("6A050104") + _H("03A1B2C3") + b"\xbb" * 35 + bytes(20) + b"\xbc",
        )
    ],
)
