"""Key stores: one interface (:class:`KeyStore`) over a software file store and a PKCS#11 HSM.

See :mod:`cardperso.keystore.base` for the interface, the wrapping format and the production
guard, and ``docs/keystore.md`` for the file format and where keys are in clear.
"""

from cardperso.keystore.base import (
    DEFAULT_KEK,
    MAC_METHODS,
    REFERENCE_KEY_SET,
    SAMPLE_KCVS,
    CipherMode,
    DerivedKey,
    EmvCard,
    GpCardKeys,
    KeyInfo,
    KeyStore,
    MacMethod,
    SessionKeyMethod,
    is_sample_kcv,
    production_guard,
)

__all__ = [
    "DEFAULT_KEK",
    "MAC_METHODS",
    "REFERENCE_KEY_SET",
    "SAMPLE_KCVS",
    "CipherMode",
    "DerivedKey",
    "EmvCard",
    "GpCardKeys",
    "KeyInfo",
    "KeyStore",
    "MacMethod",
    "SessionKeyMethod",
    "is_sample_kcv",
    "production_guard",
]
