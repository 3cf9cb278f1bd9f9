"""DER forms of SM2 values (GM/T 0009-2012): signatures ``SEQUENCE {r, s}`` and ciphertexts
``SEQUENCE {x, y, C3, C2}``, what X.509 and OpenSSL use. Strict DER: shortest lengths, minimal
non-negative INTEGERs, no trailing bytes; malformed input raises, never returns garbage.
"""

from __future__ import annotations

from cardperso.errors import SecurityError, SignatureMismatch


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _bytes(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_len(len(body)) + body


def _der_octets(value: bytes) -> bytes:
    return b"\x04" + _der_len(len(value)) + value


def _der_seq(body: bytes) -> bytes:
    return b"\x30" + _der_len(len(body)) + body


def _der_read(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    """One DER element of ``tag`` at ``pos``: (content, next position); strict lengths."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise SecurityError(f"DER: expected tag {tag:02X} at offset {pos}")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 2 or pos + count > len(data):
            raise SecurityError("DER: bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80 or (count == 2 and length < 0x100):
            raise SecurityError("DER: length not in its shortest form")
        pos += count
    if pos + length > len(data):
        raise SecurityError("DER: element runs past the end")
    return data[pos : pos + length], pos + length


def _der_read_int(data: bytes, pos: int, size: int) -> tuple[int, int]:
    body, pos = _der_read(data, pos, 0x02)
    if not body or body[0] & 0x80 or (len(body) > 1 and body[0] == 0 and not body[1] & 0x80):
        raise SecurityError("DER: INTEGER is negative or not minimal")
    if len(body) > size + 1:
        raise SecurityError("DER: INTEGER too large")
    return _int(body), pos


def signature_to_der(signature: bytes) -> bytes:
    """``r || s`` to ``SEQUENCE { r INTEGER, s INTEGER }``."""
    half = len(signature) // 2
    return _der_seq(_der_int(_int(signature[:half])) + _der_int(_int(signature[half:])))


def signature_from_der(der: bytes, size: int = 32) -> bytes:
    """DER ``SEQUENCE { r, s }`` to ``r || s``; malformed input raises :class:`SignatureMismatch`."""
    try:
        body, end = _der_read(der, 0, 0x30)
        if end != len(der):
            raise SecurityError("DER: trailing bytes")
        r, pos = _der_read_int(body, 0, size)
        s, pos = _der_read_int(body, pos, size)
        if pos != len(body) or r >> (8 * size) or s >> (8 * size):
            raise SecurityError("DER: bad signature body")
    except SecurityError as exc:
        raise SignatureMismatch(f"SM2 signature is not well-formed DER ({exc})") from None
    return _bytes(r, size) + _bytes(s, size)


def ciphertext_to_der(ciphertext: bytes, size: int = 32) -> bytes:
    """``C1 || C3 || C2`` to GM/T 0009's ``SEQUENCE { x, y INTEGER, C3, C2 OCTET STRING }``."""
    x, y = _int(ciphertext[1 : 1 + size]), _int(ciphertext[1 + size : 1 + 2 * size])
    c3, c2 = ciphertext[1 + 2 * size : 1 + 2 * size + 32], ciphertext[1 + 2 * size + 32 :]
    return _der_seq(_der_int(x) + _der_int(y) + _der_octets(c3) + _der_octets(c2))


def ciphertext_from_der(der: bytes, size: int = 32) -> bytes:
    """GM/T 0009's DER ciphertext to ``C1 || C3 || C2``; raises :class:`SecurityError`."""
    body, end = _der_read(der, 0, 0x30)
    if end != len(der):
        raise SecurityError("SM2 ciphertext DER: trailing bytes")
    x, pos = _der_read_int(body, 0, size)
    y, pos = _der_read_int(body, pos, size)
    c3, pos = _der_read(body, pos, 0x04)
    c2, pos = _der_read(body, pos, 0x04)
    if pos != len(body) or len(c3) != 32 or x >> (8 * size) or y >> (8 * size):
        raise SecurityError("SM2 ciphertext DER: bad body")
    return b"\x04" + _bytes(x, size) + _bytes(y, size) + c3 + c2
