"""The PKCS#11 key store: master keys live in an HSM token and never leave it.

How this works
--------------
* Configuration names the module (``/usr/lib/softhsm/libsofthsm2.so``), the token label, a PIN
  source (``env:VAR`` or ``file:PATH``; a PIN is never accepted directly, never logged, never on
  a command line) and optionally a mapping from key names to token labels. Keys are secret-key
  objects found by ``CKA_LABEL`` (``label_prefix + name`` unless mapped).
* Master keys are created (ceremony import, :meth:`Pkcs11KeyStore.import_key`) or generated
  inside the token (:meth:`Pkcs11KeyStore.generate_key`) as ``CKA_SENSITIVE=true``,
  ``CKA_EXTRACTABLE=false`` token objects. A 16-byte 3DES key also gets two companion objects,
  ``K1‖K1`` and ``K2‖K2`` (labels ``…#k1k1``/``…#k2k2``): ISO 9797-1 MAC algorithm 3 needs single
  DES under each half, and tokens (SoftHSM2 on OpenSSL 3) refuse single-DES mechanisms, while
  3DES under ``K‖K`` *is* single DES under ``K``.
* Per-card derivations (EMV option A, SSSE 3DES, GP EMV/VISA2) are all "ECB-encrypt derivation
  data under the master key". Two modes:

  - ``strict`` (default): one ``C_DeriveKey`` (``CKM_DES3_ECB_ENCRYPT_DATA`` /
    ``CKM_AES_ECB_ENCRYPT_DATA``) per per-card key makes a session object inside the token,
    ``C_WrapKey`` exports it under the transport KEK, ``C_Encrypt`` of the check-value block gives
    its KCV; the chunk's session is then closed, which destroys every per-card object. The host
    only ever sees wrapped bytes; asking for clear keys raises :class:`KeyStoreError`.
  - ``fast``: one ``C_Encrypt`` (ECB over every card's derivation data) per master key per chunk,
    odd parity set on the host where the scheme wants it, then one ``C_Encrypt`` under the KEK
    for the whole chunk. Per-card keys are in clear in host memory between the two calls.

  Both modes give the bytes of :mod:`cardperso.keystore.software` (format ``cardperso-wrap/1``:
  ECB under the KEK), so personalization files do not depend on the store.
* python-pkcs11 packs ``CK_KEY_DERIVATION_STRING_DATA`` itself only for
  ``CKM_AES_ECB_ENCRYPT_DATA``; for the DES variant a raw ``bytes`` parameter is passed through as
  the structure, so :func:`_string_data_param` builds that structure with :mod:`ctypes` (passing
  the data itself gave ``MechanismParamInvalid``). SoftHSM2 also refuses ``CKA_VALUE_LEN`` in a
  DES derivation template (``AttributeReadOnly``), sets odd parity on derived DES keys (a
  ``CKK_GENERIC_SECRET`` derivation keeps the exact bytes), and wraps only under AES keys.
* Issuer-host operations (ARQC, ARPC, script MAC) derive the card master key and its session key
  by chained ``C_DeriveKey`` calls in a temporary session: no card key is ever in clear.
"""

from cardperso.keystore.pkcs11.data import (
    cmac_subkey1,
    emv_a_data,
    gp_data,
    kdf3_data,
    ssse_data,
)
from cardperso.keystore.pkcs11.store import MODES, Mode, Pkcs11KeyStore
from cardperso.keystore.pkcs11.token import TEST_KEY_ID, module_lib, read_pin

__all__ = [
    "MODES",
    "TEST_KEY_ID",
    "Mode",
    "Pkcs11KeyStore",
    "cmac_subkey1",
    "emv_a_data",
    "gp_data",
    "kdf3_data",
    "module_lib",
    "read_pin",
    "ssse_data",
]
