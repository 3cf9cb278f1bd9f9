"""PEM (RFC 7468) for certificates and CRLs: DER in, text out, and the other way."""

from __future__ import annotations

import base64
import re

from cardperso.errors import DataError

__all__ = ["from_pem", "to_pem"]

_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\s*([A-Za-z0-9+/=\s]*?)\s*-----END \1-----", re.DOTALL
)


def to_pem(der: bytes, label: str = "CERTIFICATE") -> str:
    """One PEM block, 64 characters a line."""
    text = base64.b64encode(der).decode("ascii")
    lines = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n"


def from_pem(text: str, label: str = "CERTIFICATE") -> list[bytes]:
    """The DER of every ``label`` block in ``text`` (other blocks are skipped);
    :class:`DataError` when there is none or one is not base64."""
    out = []
    for found, body in _BLOCK.findall(text):
        if found != label:
            continue
        try:
            out.append(base64.b64decode("".join(body.split()), validate=True))
        except ValueError:
            raise DataError(f"a {label} block is not base64", field="pem") from None
    if not out:
        raise DataError(f"no {label} block", field="pem")
    return out
