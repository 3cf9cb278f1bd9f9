"""The host side of the card's PKI application, sans-IO: personalize it on the line, check it.

Personalization (:meth:`PkiStep.personalize`, after the chip's own steps, on GP and native
chips alike; every command's status word checked, a refusal is a
:class:`~cardperso.chip.model.ChipFailure` naming the step):

1. reach the application: on a GP card INSTALL [for install and make selectable] of the PKI
   applet in a session of the issuer security domain (the card's keys as the chip steps left
   them), SELECT it and open a secure channel through it (security level 03: every command
   MAC'd, every data field enciphered); on a native chip authenticate with the transport key in
   the MF, CREATE FILE of the DDF ``PKI.社会保障`` and of the ADF ``SS.CERT.ADF1`` in it, SELECT
   the ADF (secret commands then go ``84``-class, enciphered and MAC'd under the transport key);
2. GENERATE KEY PAIR on the card: the answer is the signing public key (``signing_key:
   import``, chips that cannot generate: the next pair of the SM2 key pool,
   :mod:`cardperso.keystore.sm2pool`, sent with IMPORT PUBLIC KEY and IMPORT PRIVATE KEY inside
   the enciphered channel);
3. SET PIN (the cardholder's PIN of the record, the profile's tries), VERIFY it, and have the
   card SIGN the PKCS#10 request for its key: the request verifies (proof that the card holds
   the private key) before anything is certified. The request (CertificationRequestInfo, its
   length set by the holder's subject) goes as an ISO/IEC 7816-4 command chain of
   :data:`SIGN_PIECE`-byte pieces, each wrapped by the secure channel on its own, so every
   command stays a short APDU; :meth:`PkiStep.check_requests` makes sure before the first card
   that every record's request fits the application's :data:`SIGN_LIMIT`;
4. the issuing CA certifies the key with the subject from the record (the ledger records the
   certificate first), UPDATE BINARY of EF 0018 in 112-byte pieces;
5. with ``encryption_pair``: the issuer's encryption pair in its SM2 key envelope (the SM4 key
   opened by the card's signing key, the private key imported under it), its certificate in EF
   0019;
6. END PERSONALIZATION (``80 E0 00 01 00``), then read both certificates back.

:func:`verify_pki` is what ``cardperso pki verify`` runs on a finished card: read the
certificates, VERIFY the PIN, SIGN a challenge.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardperso.chip import gp
from cardperso.chip.model import CardApp, CardData, ChipFailure, ChipPlan, ChipResult
from cardperso.chip.native import pin_from_block, transport_factor
from cardperso.chip.script import Steps, gp_keys, unwrap_secret
from cardperso.chip.transport import ApduCount, Flow
from cardperso.codec.apdu import CommandAPDU, chain
from cardperso.crypto import ecb_encrypt
from cardperso.crypto.sm2 import DEFAULT_USER_ID, Sm2PrivateKey, signature_to_der
from cardperso.errors import (
    CardError,
    CardPersoError,
    CryptogramMismatch,
    DataError,
    KeyStoreError,
    UsageError,
)
from cardperso.keystore.base import KeyStore
from cardperso.keystore.sm2pool import Sm2KeySource, default_pool_directory
from cardperso.layouts import x509
from cardperso.pki import ledger
from cardperso.pki.ca import (
    CardholderProfile,
    Holder,
    Issuer,
    cardholder_subject,
    verify_request,
)
from cardperso.pki.card_app import (
    ADMIN_PIN,
    ENC_CERT,
    ENC_PRIV,
    ENC_PUB,
    PKI_ADF_NAME,
    PKI_DDF_NAME,
    PKI_MODULE,
    PKI_PACKAGE,
    SIGN_CERT,
    SIGN_LIMIT,
    SIGN_PRIV,
    SIGN_PUB,
    USER_PIN,
    bcd_pin,
    decimal_pin,
    pin_hash,
)
from cardperso.pki.issue import CardIssuer, key_envelope
from cardperso.pki.pem import from_pem
from cardperso.profiles.chips import ChipProfile
from cardperso.profiles.model import PkiSpec, Profile
from cardperso.protocol import fmcos

__all__ = [
    "PKI_COMMANDS",
    "PKI_DDF_FID",
    "SIGN_PIECE",
    "PkiStep",
    "admin_pin",
    "load_certificate",
    "load_certificates",
    "pki_step",
    "read_file",
    "record_pin",
    "sign",
    "unblock_pin",
    "verify_pin",
]

#: What the PKI step sends besides the chip's own steps (a chip profile must list them).
PKI_COMMANDS = frozenset(
    {
        "SELECT", "GET CHALLENGE", "EXTERNAL AUTHENTICATE", "READ BINARY", "UPDATE BINARY",
        "VERIFY", "GENERATE KEY PAIR", "SET PIN", "KEY ENVELOPE", "IMPORT KEY",
        "PERFORM SECURITY OPERATION", "END PERSONALIZATION",
    }
)  # fmt: skip
#: FIDs of the PKI DDF and ADF on native chips [ours: the names are public, the FIDs are not].
PKI_DDF_FID, PKI_ADF_FID = 0xDF20, 0xDF21
#: UPDATE BINARY piece (N8 writes certificates 0x70 bytes at a time); READ BINARY piece.
WRITE_PIECE, READ_PIECE = 0x70, 0xE0
#: SIGN's command-chain piece: under the secure channel at level 03 a piece is padded to the
#: next 16-byte block (SCP03; 8-byte for SCP02) and gets an 8-byte C-MAC, 224 + 16 + 8 = 248
#: bytes: a short APDU.
SIGN_PIECE = 0xE0

Send = Callable[[bytes, str], Flow[bytes]]


def send_plain(apdu: bytes, step: str) -> Flow[bytes]:
    return gp.ok((yield apdu), step)


def _apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    return CommandAPDU(cla, ins, p1, p2, data, le=le).to_bytes()


def load_certificates(path: Path) -> list[bytes]:
    """The certificates of a file, PEM (one or more blocks) or one DER certificate, each
    decoded once; :class:`UsageError` naming the file otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the certificate: {exc.strerror}") from None
    try:
        found = from_pem(raw.decode("ascii")) if raw.lstrip().startswith(b"-----") else [raw]
        for der in found:
            x509.decode_certificate(der)
    except (CardPersoError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not an X.509 certificate: {exc}") from None
    return found


def load_certificate(path: Path) -> bytes:
    """The first certificate of a file (:func:`load_certificates`)."""
    return load_certificates(path)[0]


def read_file(send: Send, fid: int, what: str) -> Flow[bytes]:
    """SELECT ``fid`` and READ BINARY a DER object from it (its length from its header)."""
    yield from send(_apdu(0x00, 0xA4, 0x00, 0x00, fid.to_bytes(2, "big")), f"SELECT {what}")
    head = yield from send(_apdu(0x00, 0xB0, 0x00, 0x00, le=4), f"READ BINARY {what}")
    if head[:1] != b"\x30" or head[1] != 0x82:
        raise ChipFailure(f"READ BINARY {what}", "the file holds no certificate")
    total = 4 + int.from_bytes(head[2:4], "big")
    data = head
    while len(data) < total:
        n = min(READ_PIECE, total - len(data))
        off = len(data)
        data += yield from send(
            _apdu(0x00, 0xB0, off >> 8, off & 0xFF, le=n), f"READ BINARY {what}"
        )
    return data


def verify_pin(send: Send, pin: bytes, step: str = "VERIFY PIN", ref: int = USER_PIN) -> Flow[None]:
    """GET CHALLENGE (16 bytes) and VERIFY with SM4(hash(PIN)[:16], challenge) (N8)."""
    challenge = yield from send(_apdu(0x00, 0x84, 0x00, 0x00, le=16), "GET CHALLENGE")
    proof = ecb_encrypt("SM4", pin_hash(pin)[:16], challenge)
    yield from send(_apdu(0x00, 0x20, 0x01, ref, proof), step)


def admin_pin(keys: KeyStore, master: str, card_no: str) -> bytes:
    """A card's administrator PIN (8 digits, packed BCD): the ``master`` diversified by the
    card number's 8 body characters (the SSSE's diversification), decimalized."""
    factor = card_no[:8].encode("ascii").ljust(8, b"0")
    key = keys.derive_ssse(master, [factor], wrap_under=None)[0].secret().value
    return bcd_pin(decimal_pin(key))


def unblock_pin(admin: bytes) -> Flow[None]:
    """SELECT the ADF, VERIFY the administrator PIN, RESET RETRY COUNTER of the user PIN."""
    yield from send_plain(
        _apdu(0x00, 0xA4, 0x04, 0x00, PKI_ADF_NAME, le=256), "SELECT SS.CERT.ADF1"
    )
    yield from verify_pin(send_plain, admin, "VERIFY administrator PIN", ADMIN_PIN)
    yield from send_plain(_apdu(0x00, 0x2C, 0x03, USER_PIN), "RESET RETRY COUNTER")


def sign(send: Send, message: bytes, step: str = "SIGN") -> Flow[bytes]:
    """PERFORM SECURITY OPERATION: COMPUTE DIGITAL SIGNATURE → ``r ‖ s``; a message longer than
    :data:`SIGN_PIECE` goes as an ISO/IEC 7816-4 command chain (CLA b5 on every piece but the
    last, each through ``send``: wrapped on its own by a secure channel), the card signs on the
    last piece. A message over the application's :data:`SIGN_LIMIT` is refused before any
    command (:class:`UsageError`)."""
    if len(message) > SIGN_LIMIT:
        raise UsageError(
            f"{step}: the message is {len(message)} bytes, the PKI application signs at most "
            f"{SIGN_LIMIT}"
        )
    pieces = chain(0x00, 0x2A, 0x9E, 0x9A, message, SIGN_PIECE, le=256)
    for n, piece in enumerate(pieces[:-1], start=1):
        yield from send(piece.to_bytes(), f"{step} (chain piece {n} of {len(pieces)})")
    signature = yield from send(pieces[-1].to_bytes(), step)
    if len(signature) != 64:
        raise ChipFailure(step, f"the card answered {len(signature)} bytes, not r ‖ s")
    return signature


def record_pin(keys: KeyStore, kek: str, ssse: CardApp) -> bytes:
    """The cardholder's PIN of a record (packed BCD, F-padded): the SSSE's PIN block (DGI 8F10)
    unwrapped from the transport ``kek``; the PKI application gets the same PIN."""
    pin_dgi = dict(ssse.dgis).get(0x8F10)
    if pin_dgi is None:
        raise ChipFailure("PKI", "the record has no PIN (DGI 8F10) for the PKI application")
    return pin_from_block(unwrap_secret(keys, kek, 0x8F10, pin_dgi))


def _holder(ssse: CardApp) -> Holder:
    dgis = dict(ssse.dgis)
    ssn = dgis.get(0x0601, b"")[2:].decode("ascii", "replace")
    name_bytes = (dgis.get(0x0602, b"")[2:] + dgis.get(0x0603, b"")[2:]).replace(b"\x00", b"")
    return Holder(name_bytes.decode("gbk", "replace"), ssn)


@dataclass
class PkiStep:
    """The PKI personalization of a product's cards (see the module docstring)."""

    issuer: CardIssuer
    spec: PkiSpec
    keys: KeyStore
    #: The SM2 key pool of ``signing_key: import``.
    key_source: Sm2KeySource | None = None

    def check_pool(self, cards: int) -> None:
        """Before the first card: the SM2 key pool (``signing_key: import``) has a key for
        each of the ``cards`` still to make (:class:`UsageError` otherwise)."""
        if self.key_source is not None:
            self.key_source.check(cards)

    def check_requests(self, records: Iterable[CardData], ssse_aid: bytes) -> None:
        """Before the first card: every record's certificate request (its subject from the
        record's SSSE data) builds and fits what SIGN takes (:data:`SIGN_LIMIT`), so a record
        the card could never sign is refused before a card is spent; :class:`DataError` naming
        the record otherwise."""
        probe = _probe_key()
        for card in records:
            where = f"{card.index} (card {card.card_no})"
            ssse = next((a for a in card.apps if a.aid == ssse_aid), None)
            if ssse is None:
                raise DataError("no SSSE application: the PKI needs the holder's data",
                                record=where)  # fmt: skip
            try:
                tbs = x509.tbs_request(cardholder_subject(_holder(ssse), self.issuer.profile),
                                       probe)  # fmt: skip
            except DataError as exc:
                raise exc.at(record=where) from None
            if len(tbs) > SIGN_LIMIT:
                raise DataError(
                    f"its PKI certificate request is {len(tbs)} bytes, the card's PKI "
                    f"application signs at most {SIGN_LIMIT} (the subject: the holder's name and "
                    "the profile's pki organization / organizational_unit)",
                    record=where,
                )

    def after(self, flow: Steps, card: CardData, plan: ChipPlan, chip: ChipProfile | None,
              atr: bytes) -> Steps:  # fmt: skip
        """The chip's own steps, then the PKI's."""
        result = yield from flow
        return (yield from self.personalize(card, result, plan, chip))

    def personalize(
        self, card: CardData, result: ChipResult, plan: ChipPlan, chip: ChipProfile | None
    ) -> Steps:
        ssse = next((a for a in card.apps if a.aid == plan.ssse_aid), None)
        if ssse is None:
            raise ChipFailure("PKI", "the record has no SSSE application (the holder's data)")
        pin = record_pin(self.keys, plan.kek, ssse)
        count = ApduCount()
        try:
            checks = yield from count(self._steps(card, ssse, pin, result, plan, chip))
        except CardError as exc:
            raise ChipFailure(exc.command, f"card answered {exc.sw:04X} ({exc.meaning})") from None
        except CryptogramMismatch:
            raise ChipFailure("PKI INITIALIZE UPDATE", "card cryptogram does not verify") from None
        return dataclasses.replace(
            result, apdus=result.apdus + count.n, checks=result.checks + checks
        )

    def _steps(self, card: CardData, ssse: CardApp, pin: bytes, result: ChipResult,
               plan: ChipPlan, chip: ChipProfile | None) -> Flow[tuple[str, ...]]:  # fmt: skip
        holder = _holder(ssse)
        if chip is not None and chip.cos == "native":
            tk = (
                self.keys.derive_ssse(
                    chip.transport_key, [transport_factor(result.chip_serial)], wrap_under=None
                )[0]
                .secret()
                .value
            )
            send, secret = yield from _native_preamble(tk, chip.algorithm)
        else:
            session = yield from _gp_preamble(self.keys, plan)
            send = secret = session.send
        # 2. the card makes its key pair (or the issuer does, sent under the secure channel)
        if self.key_source is not None:
            public = yield from _import_signing_pair(secret, self.key_source.take())
        else:
            answer = yield from send(
                _apdu(0x80, 0x40, 0, 0, _fids(SIGN_PUB, SIGN_PRIV)), "GENERATE KEY PAIR"
            )
            if len(answer) != 66 or answer[:2] != b"\xca\x40":
                raise ChipFailure("GENERATE KEY PAIR", "the answer is not a public key (CA 40 x y)")
            public = b"\x04" + answer[2:]
        # 3. the PIN, and the card's proof that it holds the private key
        yield from secret(_apdu(0x00, 0x2C, 0x02, USER_PIN, bytes((self.spec.pin_tries,)) + pin),
                          "SET PIN")  # fmt: skip
        if self.spec.admin_pin_key:
            admin = admin_pin(self.keys, self.spec.admin_pin_key, card.card_no)
            yield from secret(_apdu(0x00, 0x2C, 0x02, ADMIN_PIN,
                                    bytes((self.spec.pin_tries,)) + admin), "SET ADMIN PIN")  # fmt: skip
            del admin
        yield from verify_pin(send, pin)
        tbs = x509.tbs_request(cardholder_subject(holder, self.issuer.profile), public)
        signature = yield from sign(send, tbs, "SIGN certificate request")
        try:
            verify_request(x509.signed(tbs, signature_to_der(signature)))
        except CardPersoError:
            raise ChipFailure(
                "SIGN certificate request", "the card's signature does not verify"
            ) from None
        # 4. the signing certificate
        issued = [self.issuer.issue(holder, public, "sign", card_no=card.card_no,
                                    chip_serial=result.chip_serial)]  # fmt: skip
        yield from _write(send, SIGN_CERT, issued[0].der, "EF0018 signing certificate")
        # 5. the encryption pair in its envelope
        if self.spec.encryption_pair:
            env = key_envelope(public)
            yield from secret(_apdu(0x80, 0x4E, 0x00, 0x01, _tlv(0xC2, SIGN_PRIV.to_bytes(2, "big"))
                                    + b"\xc1\x82" + len(env.wrapped_key).to_bytes(2, "big")
                                    + env.wrapped_key), "KEY ENVELOPE")  # fmt: skip
            yield from secret(_apdu(0x80, 0xC2, 0x40, 0x00, _tlv(0xC0, ENC_PUB.to_bytes(2, "big"))
                                    + _tlv(0xCA, env.public_key[1:])), "IMPORT PUBLIC KEY")  # fmt: skip
            yield from secret(_apdu(0x80, 0xC2, 0xC0, 0x01, _tlv(0xC2, ENC_PRIV.to_bytes(2, "big"))
                                    + _tlv(0xCB, env.wrapped_private)), "IMPORT PRIVATE KEY")  # fmt: skip
            enc_public = env.public_key
            del env
            issued.append(self.issuer.issue(holder, enc_public, "encrypt", card_no=card.card_no,
                                            chip_serial=result.chip_serial))  # fmt: skip
            yield from _write(send, ENC_CERT, issued[1].der, "EF0019 encryption certificate")
        # 6. done: personalization closes, the certificates read back
        yield from send(_apdu(0x80, 0xE0, 0x00, 0x01), "END PERSONALIZATION")
        if chip is not None and chip.cos == "native":  # the DDF is ended too
            yield from send(_apdu(0x00, 0xA4, 0x04, 0x00, PKI_DDF_NAME), "SELECT PKI DDF")
            yield from send(_apdu(0x80, 0xE0, 0x00, 0x01), "END OF CREATION PKI DDF")
            yield from send(_apdu(0x00, 0xA4, 0x04, 0x00, PKI_ADF_NAME), "SELECT PKI ADF")
        checks = []
        for cert, fid, what in zip(issued, (SIGN_CERT, ENC_CERT), ("signing", "encryption")):
            back = yield from read_file(send, fid, f"{what} certificate")
            if back != cert.der:
                raise ChipFailure(f"READ BINARY {what} certificate", "differs from the one issued")
            checks.append(f"PKI {what} certificate {cert.serial:X}")
        return tuple(checks)


def _probe_key() -> bytes:
    """A public key to size certificate requests with (every SM2 key, ``04 ‖ x ‖ y``, is
    the same length in the request): the curve's generator, 1·G."""
    return Sm2PrivateKey.from_bytes((1).to_bytes(32, "big")).public_key.to_bytes()


def _import_signing_pair(secret: Send, pair: Sm2PrivateKey) -> Flow[bytes]:
    """An issuer-made signing pair (from the pool): IMPORT PUBLIC KEY into 0012, the private
    key in clear inside the enciphered channel into 0013 (``80 C2 C0 00``); its public key."""
    public = pair.public_key.to_bytes()
    yield from secret(_apdu(0x80, 0xC2, 0x40, 0x00, _tlv(0xC0, SIGN_PUB.to_bytes(2, "big"))
                            + _tlv(0xCA, public[1:])), "IMPORT SIGNING PUBLIC KEY")  # fmt: skip
    yield from secret(_apdu(0x80, 0xC2, 0xC0, 0x00, _tlv(0xC2, SIGN_PRIV.to_bytes(2, "big"))
                            + _tlv(0xCB, pair.to_bytes())), "IMPORT SIGNING PRIVATE KEY")  # fmt: skip
    del pair
    return public


def _fids(pub: int, priv: int) -> bytes:
    return _tlv(0xC0, pub.to_bytes(2, "big")) + _tlv(0xC2, priv.to_bytes(2, "big"))


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag, len(value))) + value


def _write(send: Send, fid: int, der: bytes, what: str) -> Flow[None]:
    yield from send(_apdu(0x00, 0xA4, 0x00, 0x00, fid.to_bytes(2, "big")), f"SELECT {what}")
    for off in range(0, len(der), WRITE_PIECE):
        piece = der[off : off + WRITE_PIECE]
        yield from send(_apdu(0x00, 0xD6, off >> 8, off & 0xFF, piece), f"UPDATE BINARY {what}")


def _gp_preamble(keys: KeyStore, plan: ChipPlan) -> Flow[gp.SecureSession]:
    def card_keys(kdd: bytes) -> Any:
        return gp_keys(keys, plan, kdd, transport=not plan.put_key)

    yield from gp.select(gp.ISD_AID, "SELECT ISD")
    session = yield from gp.open_channel(card_keys, scp=plan.scp, i=plan.i, security_level=0x03)
    install = gp.install_command(0x0C, PKI_PACKAGE, PKI_MODULE, PKI_ADF_NAME, b"\x00")
    yield from session.send(install, "INSTALL PKI")
    session.close()
    yield from gp.select(PKI_ADF_NAME, "SELECT PKI")
    return (yield from gp.open_channel(card_keys, scp=plan.scp, i=plan.i, security_level=0x03))


def _native_preamble(tk: bytes, algorithm: str) -> Flow[tuple[Send, Send]]:
    yield from send_plain(_apdu(0x00, 0xA4, 0x00, 0x00, b"\x3f\x00"), "SELECT MF")
    challenge = yield from send_plain(_apdu(0x00, 0x84, 0x00, 0x00, le=8), "GET CHALLENGE")
    block = 16 if algorithm == "SM4" else 8
    cryptogram = ecb_encrypt(algorithm, tk, challenge.ljust(block, b"\x00"))
    yield from send_plain(
        _apdu(0x00, 0x82, 0x00, 0x00, cryptogram), "EXTERNAL AUTHENTICATE transport key"
    )
    for fid, name, size in ((PKI_DDF_FID, PKI_DDF_NAME, 0x400), (PKI_ADF_FID, PKI_ADF_NAME, 0x300)):
        df = b"\x38" + size.to_bytes(2, "big") + b"\xf5\xf5\x95\xff\xff" + name
        yield from send_plain(_apdu(0x80, 0xE0, fid >> 8, fid & 0xFF, df), f"CREATE FILE {name!r}")
        yield from send_plain(_apdu(0x00, 0xA4, 0x04, 0x00, name), f"SELECT {name!r}")

    def secret(apdu: bytes, step: str) -> Flow[bytes]:
        header, data = apdu[:4], apdu[5:]
        challenge = yield from send_plain(_apdu(0x00, 0x84, 0x00, 0x00, le=8), "GET CHALLENGE")
        protected = fmcos.protect(bytes((header[0] | 0x04,)) + header[1:], data, algorithm, tk,
                                  challenge, encrypt=True)  # fmt: skip
        return (yield from send_plain(protected, step))

    return send_plain, secret


def pki_step(
    profile: Profile, keys: KeyStore, db: Any, *, now: float | None = None
) -> PkiStep | None:
    """The PKI step of ``profile``'s cards (``None``: the product has no ``pki`` section),
    checked before the first card: the issuing CA's key is in ``keys`` and is an SM2 key, its
    certificate (``issuing_ca_certificate``, relative to the profile's directory) is a CA
    certificate of that very key and still valid; the ledger's tables exist in ``db``; with
    ``signing_key: import`` the SM2 key pool is one under the store's KEK (its free keys are
    counted by :meth:`PkiStep.check_pool` once the run's cards are known)."""
    spec = profile.pki
    if spec is None:
        return None
    try:
        signer = keys.sm2_signer(spec.issuing_ca_key)
    except KeyStoreError as exc:
        raise UsageError(f"pre-flight: the PKI's issuing CA key: {exc}") from None
    path = Path(spec.issuing_ca_certificate)
    if not path.is_absolute():
        path = Path(profile.source).parent / path
    der = load_certificate(path)
    model = x509.decode_certificate(der)
    if not model.is_ca:
        raise UsageError(f"pre-flight: {path} is not a CA certificate")
    if model.public_key != signer.public_key.to_bytes():
        raise UsageError(
            f"pre-flight: {path} certifies another key than {spec.issuing_ca_key!r} in the store"
        )
    if model.not_after.timestamp() <= (time.time() if now is None else now):
        raise UsageError(f"pre-flight: the issuing CA certificate {path} has expired")
    if spec.admin_pin_key and spec.admin_pin_key not in keys.names():
        raise UsageError(
            f"pre-flight: the PKI's administrator PIN key {spec.admin_pin_key!r} is not in the store"
        )
    ledger.ensure_tables(db)
    holder_profile = CardholderProfile(
        spec.organization, spec.organizational_unit, spec.country, spec.mask_identity,
        spec.validity_days,
    )  # fmt: skip

    def record(cert: Any) -> None:
        ledger.record(db, cert)

    source = None
    if spec.signing_key == "import":
        pool = Path(spec.key_pool) if spec.key_pool else default_pool_directory(keys)
        if spec.key_pool and not pool.is_absolute():
            pool = Path(profile.source).parent / pool
        source = Sm2KeySource(pool, keys, label=f"line {profile.name}")
        source.check(0)
    user_id = b"" if spec.ca_user_id == "empty" else DEFAULT_USER_ID
    issuer = Issuer(signer, der, user_id)
    return PkiStep(CardIssuer(issuer, holder_profile, record), spec, keys, source)


@dataclass(frozen=True, slots=True)
class PkiReadout:
    """What :func:`read_pki` took from a card: its certificates and its signature of the
    challenge (``r ‖ s``)."""

    signing_certificate: bytes
    encryption_certificate: bytes | None
    signature: bytes


def read_pki(pin: bytes, challenge: bytes) -> Flow[PkiReadout]:
    """A finished card's PKI application as a relying party sees it: SELECT the ADF, READ
    BINARY both certificates (the encryption one may be absent), VERIFY the PIN, SIGN the
    challenge."""
    send = send_plain
    yield from send(_apdu(0x00, 0xA4, 0x04, 0x00, PKI_ADF_NAME, le=256), "SELECT SS.CERT.ADF1")
    signing = yield from read_file(send, SIGN_CERT, "signing certificate")
    try:
        encryption: bytes | None = yield from read_file(send, ENC_CERT, "encryption certificate")
    except ChipFailure:
        encryption = None
    yield from verify_pin(send, pin)
    signature = yield from sign(send, challenge, "SIGN challenge")
    return PkiReadout(signing, encryption, signature)
