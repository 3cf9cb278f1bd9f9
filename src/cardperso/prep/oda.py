"""Per-card offline data authentication (ODA) data: the ICC key pair from the pool, its
certificate signed by the issuer, and the private key for the card, a chunk at a time.

How this works
--------------
A run reserves its ICC keys from the pool before it writes anything
(:meth:`cardperso.keystore.pool.IccKeyPool.reserve`); each record then owns the key at its input
line (:class:`OdaChunk`), so the worker count and the chunk size change nothing. For a chunk,
:func:`icc_dgis` takes the chunk's keys (one read of the pool), each card's *static data to be
authenticated* (:func:`static_data_of`: the records the AFL marks for ODA, then the AIP when 9F4A
lists it; EMV 4.3 Book 3 10.3) and returns, per card, its ODA DGIs:

* the record DGI ``cert_dgi`` (SFI ‖ record, template 70) with 9F46, the ICC public-key
  certificate (format 04, EMV 4.3 Book 2 table 14: :func:`cardperso.layouts.emv_cert.build_icc_certificate`),
  signed by the issuer key through the key store (``rsa_signer``: ``C_Sign`` with
  ``CKM_RSA_X_509`` in an HSM) - the one raw RSA private operation per card -; 9F47 the ICC
  public exponent, 9F48 the remainder of the modulus when it does not fit, 9F49 the DDOL;
* for SDA, the record DGI ``ssad_dgi`` with 93, the signed static application data (format 03,
  Book 2 table 7) - a second private operation per card;
* DGIs 8201-8205, the CRT parts q⁻¹ mod p, d mod (q−1), d mod (p−1), q, p, each ``80``-padded
  and encrypted under the transport KEK (``/work/shared/reference/pboc-conformance.md`` section
  4). When the pool's KEK is the transport KEK these are the pool's bytes as they are: no ICC
  private key is in clear anywhere at prep. Otherwise the chunk's parts are re-encrypted with
  one ``unwrap`` and one ``wrap`` call (in clear in host memory between the two).

The certificate's serial number is the key's position in the pool (unique, 3 bytes), its expiry
the card's (MMYY). The records that carry 9F46 and 93 must not themselves be marked for ODA.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cardperso.codec.dgi import encode_dgi, iter_dgis
from cardperso.codec.tlv import encode as tlv
from cardperso.crypto.primitives import BLOCK_SIZE, pad_method2, unpad_method2
from cardperso.errors import DataError, UsageError
from cardperso.keystore import KeyStore
from cardperso.keystore.pool import PART_DGIS, IccKeyPool, PoolKeys, Reservation
from cardperso.keystore.poolgen import check_kek
from cardperso.layouts.emv_cert import build_icc_certificate, build_ssad, static_data
from cardperso.profiles.model import Profile

__all__ = [
    "OdaChunk",
    "OdaSetup",
    "afl_records",
    "gpo_aip_afl",
    "icc_dgis",
    "private_parts",
    "reserve_for_run",
    "static_data_of",
]

#: The GPO responses of the PBOC application: debit/credit (9104), electronic cash (9203) and
#: qPBOC (9207: fDDA checks the same ICC certificate, so the same AIP and ODA records).
GPO_DGIS = (0x9104, 0x9203, 0x9207)

RawSigner = Callable[[bytes], bytes]


def afl_records(afl: bytes) -> list[tuple[int, int, bool]]:
    """The AFL (94) as (SFI, record, marked for ODA) in AFL order (EMV 4.3 Book 3 10.2: four
    bytes per entry: SFI << 3, first record, last record, number of ODA records from the first)."""
    if not afl or len(afl) % 4:
        raise UsageError("AFL (94): a whole number of 4-byte entries")
    out: list[tuple[int, int, bool]] = []
    for i in range(0, len(afl), 4):
        sfi, first, last, oda = afl[i] >> 3, afl[i + 1], afl[i + 2], afl[i + 3]
        if not 1 <= sfi <= 30 or afl[i] & 7 or first == 0 or last < first:
            raise UsageError(f"AFL (94) entry {i // 4 + 1}: bad SFI or record range")
        if oda > last - first + 1:
            raise UsageError(f"AFL (94) entry {i // 4 + 1}: more ODA records than records")
        out += [(sfi, r, r - first < oda) for r in range(first, last + 1)]
    return out


def gpo_aip_afl(profile: Profile) -> tuple[bytes, bytes]:
    """The AIP (82) and AFL (94) of the profile's GPO responses (DGIs 9104, 9203, 9207). All paths
    must mark the same records for ODA with the same AIP: one certificate serves both, and its
    hash covers those records and the AIP (a :class:`UsageError` says which differs)."""
    if profile.pboc is None:
        raise UsageError(f"profile {profile.name} has no PBOC application: no ODA")
    found: dict[int, tuple[bytes, bytes]] = {}
    for c in profile.pboc.constant_dgis:
        if c.dgi in GPO_DGIS:
            tags = {t.tag: t.value for t in c.tlv}
            if 0x82 not in tags or 0x94 not in tags:
                raise UsageError(f"profile {profile.name}: DGI {c.dgi:04X} lacks 82 or 94")
            found[c.dgi] = (tags[0x82], tags[0x94])
    if not found:
        raise UsageError(f"profile {profile.name}: no GPO response (DGI 9104 or 9203)")
    (first, (aip, afl)), *others = found.items()
    marked = [(s, r) for s, r, m in afl_records(afl) if m]
    for dgi, (other_aip, other_afl) in others:
        if other_aip != aip or [(s, r) for s, r, m in afl_records(other_afl) if m] != marked:
            raise UsageError(
                f"profile {profile.name}: DGIs {first:04X} and {dgi:04X} differ in the AIP or in "
                "the records marked for ODA (one ICC certificate must serve every GPO path)"
            )
    return aip, afl


@dataclass(frozen=True, slots=True)
class OdaSetup:
    """What a profile's ODA asks for, resolved once per run (checked by :meth:`make`)."""

    #: The issuer's raw private operation (``KeyStore.rsa_signer``) and its modulus length.
    issuer_sign: RawSigner
    issuer_length: int
    #: The AFL (94), the AIP (82) and the SDA tag list (9F4A: ``82`` or empty).
    afl: bytes
    aip: bytes
    tag_list: bytes
    #: Record DGI (SFI ‖ record) that carries 9F46/9F47/9F48/9F49; its DDOL (9F49, may be empty).
    cert_dgi: int
    ddol: bytes
    #: Record DGI for 93 (SDA) and its data authentication code, or ``None``: no 93.
    ssad_dgi: int | None
    dac: bytes
    transport_kek: str
    #: The record DGIs whose template 70 goes into the static data, in AFL order.
    oda_dgis: tuple[tuple[int, int], ...] = ()

    @classmethod
    def make(
        cls,
        *,
        issuer_sign: RawSigner,
        issuer_length: int,
        afl: bytes,
        aip: bytes,
        tag_list: bytes = b"\x82",
        cert_dgi: int,
        ddol: bytes = b"\x9f\x37\x04",
        ssad_dgi: int | None = None,
        dac: bytes = b"\xda\xc1",
        transport_kek: str,
    ) -> OdaSetup:
        records = afl_records(afl)
        oda = tuple((sfi, (sfi << 8) | rec) for sfi, rec, marked in records if marked)
        in_afl = {(sfi << 8) | rec for sfi, rec, _ in records}
        for name, dgi in (("cert_dgi", cert_dgi), ("ssad_dgi", ssad_dgi)):
            if dgi is None:
                continue
            if dgi not in in_afl:
                raise UsageError(f"ODA {name} {dgi:04X} is not a record the AFL names")
            if any(d == dgi for _, d in oda):
                raise UsageError(f"ODA {name} {dgi:04X} is marked for ODA: it cannot sign itself")
        if len(aip) != 2 or tag_list not in (b"", b"\x82") or len(dac) != 2:
            raise UsageError("ODA: the AIP is 2 bytes, 9F4A lists 82 or nothing, the DAC 2 bytes")
        if not 64 <= issuer_length <= 248:
            raise UsageError("ODA: the issuer modulus is 64 to 248 bytes")
        return cls(
            issuer_sign, issuer_length, afl, aip, tag_list, cert_dgi, ddol, ssad_dgi, dac,
            transport_kek, oda,
        )  # fmt: skip

    @classmethod
    def for_profile(cls, profile: Profile, store: KeyStore) -> OdaSetup | None:
        """The setup of a profile's ``pboc.oda`` section (``None`` when it asks for no ODA):
        the issuer key's signer and length from the key store, the AIP and AFL of its GPO
        responses (:func:`gpo_aip_afl`), the SDA tag list 9F4A of its records (none: the AIP
        is not in the static data, EMV Book 3 10.3)."""
        p = profile.pboc
        if p is None or p.oda is None:
            return None
        oda = p.oda
        aip, afl = gpo_aip_afl(profile)
        lists = {t.value for c in p.constant_dgis for t in c.tlv if t.tag == 0x9F4A}
        if len(lists) > 1:
            raise UsageError(f"profile {profile.name}: two different 9F4A tag lists")
        modulus, _exponent = store.rsa_public_key(oda.issuer_key)
        return cls.make(
            issuer_sign=store.rsa_signer(oda.issuer_key),
            issuer_length=len(modulus),
            afl=afl,
            aip=aip,
            tag_list=lists.pop() if lists else b"",
            cert_dgi=oda.cert_dgi,
            ddol=oda.ddol,
            ssad_dgi=oda.ssad_dgi,
            dac=oda.dac,
            transport_kek=profile.transport_kek,
        )


def static_data_of(setup: OdaSetup, card_dgis: bytes | Mapping[int, bytes]) -> bytes:
    """A card's static data to be authenticated, from its record DGIs (a DGI stream or a map
    DGI -> content): the AFL's ODA records, then the AIP when 9F4A lists 82."""
    if isinstance(card_dgis, (bytes, bytearray, memoryview)):
        wanted = {d for _, d in setup.oda_dgis}
        found = {d: v for d, v in iter_dgis(bytes(card_dgis)) if d in wanted}
    else:
        found = dict(card_dgis)
    records = []
    for sfi, dgi in setup.oda_dgis:
        content = found.get(dgi)
        if content is None:
            raise DataError(f"record DGI {dgi:04X} the AFL marks for ODA is missing", field="oda")
        records.append((sfi, content))
    return static_data(records, setup.tag_list, {0x82: setup.aip})


def private_parts(keys: PoolKeys, store: KeyStore, transport_kek: str) -> tuple[bytes, int]:
    """The chunk's CRT parts encrypted under ``transport_kek`` (5 per key, DGI order) and the
    length of one part: the pool's bytes when its KEK is the transport KEK, else re-encrypted
    with one unwrap and one wrap call (module docstring)."""
    if keys.kek == transport_kek or not len(keys):
        return keys.private, keys.part_len
    clear = store.unwrap(keys.kek, keys.private)
    block = BLOCK_SIZE[store.info(transport_kek).algorithm]
    n = keys.part_len
    if n % block == 0 and (keys.bits // 16 + 1 + block - 1) // block * block == n:
        return store.wrap(transport_kek, clear), n
    parts = [unpad_method2(clear[i : i + n]) for i in range(0, len(clear), n)]
    padded = [pad_method2(p, block) for p in parts]
    return store.wrap(transport_kek, b"".join(padded)), len(padded[0])


def _cn(pan: str) -> bytes:
    return bytes.fromhex(pan + "F" if len(pan) % 2 else pan)


def icc_dgis(
    setup: OdaSetup,
    keys: PoolKeys,
    static: Sequence[bytes],
    pans: Sequence[str],
    expiries: Sequence[str],
    store: KeyStore,
) -> list[bytes]:
    """Per card, its ODA DGIs (module docstring): the 9F46 record, 93 for SDA, 8201-8205.

    ``static`` is each card's :func:`static_data_of`, ``pans`` the PAN digits, ``expiries`` the
    card's expiry as YYMM; ``keys`` holds one pool key per card, in the same order."""
    count = len(keys)
    if not len(static) == len(pans) == len(expiries) == count:
        raise UsageError("icc_dgis: one key, static data, PAN and expiry per card")
    secret, n = private_parts(keys, store, setup.transport_kek)
    sign, length, exp = setup.issuer_sign, setup.issuer_length, keys.exponent
    exp_tlv = tlv(0x9F47, exp.to_bytes((exp.bit_length() + 7) // 8, "big"))
    ddol_tlv = tlv(0x9F49, setup.ddol) if setup.ddol else b""
    out: list[bytes] = []
    for i in range(count):
        yymm = expiries[i]
        cert = build_icc_certificate(
            sign,
            length,
            pan=_cn(pans[i]),
            expiry=bytes.fromhex(yymm[2:4] + yymm[:2]),
            serial=(keys.index[i] & 0xFFFFFF).to_bytes(3, "big") if keys.index else bytes(3),
            modulus=keys.moduli[i],
            exponent=exp,
            static=static[i],
        )
        body = tlv(0x9F46, cert.certificate) + exp_tlv
        if cert.remainder:
            body += tlv(0x9F48, cert.remainder)
        dgis = [encode_dgi(setup.cert_dgi, tlv(0x70, body + ddol_tlv))]
        if setup.ssad_dgi is not None:
            ssad = build_ssad(sign, length, dac=setup.dac, static=static[i])
            dgis.append(encode_dgi(setup.ssad_dgi, tlv(0x70, tlv(0x93, ssad))))
        base = 5 * n * i
        for j, dgi in enumerate(PART_DGIS):
            dgis.append(encode_dgi(dgi, secret[base + j * n : base + (j + 1) * n]))
        out.append(b"".join(dgis))
    return out


def reserve_for_run(
    pool: IccKeyPool, store: KeyStore, *, bits: int, lines: int, label: str
) -> Reservation:
    """Reserve a run's ICC keys before it writes anything: one key per input line (``lines``,
    an upper bound of the records: header and rejected lines waste theirs). Refuses a pool of
    another key size or under another KEK than the store's, and raises
    :class:`~cardperso.keystore.pool.PoolExhausted` when too few keys are free."""
    status = pool.status()
    if status.bits != bits:
        raise UsageError(
            f"ICC key pool {pool.directory} holds {status.bits}-bit keys, the profile asks for {bits}"
        )
    check_kek(status.kek, status.kek_kcv, store, str(pool.directory))
    return pool.reserve(lines, label=label)


class OdaChunk:
    """The pipeline's side: the record at input line L owns the reservation's key
    ``L - first_line`` (``first_line``: the first data line, so any chunking gives the same
    keys); :meth:`build` makes one pool read per chunk."""

    def __init__(
        self, setup: OdaSetup, reservation: Reservation, first_line: int, store: KeyStore
    ) -> None:
        self.setup, self.reservation, self.first_line = setup, reservation, first_line
        self.store = store

    def build(
        self,
        lines: Sequence[int],
        card_dgis: Sequence[bytes],
        pans: Sequence[str],
        expiries: Sequence[str],
    ) -> list[bytes]:
        """Per record (input ``lines``, each card's DGI stream, PAN, expiry YYMM): its ODA
        DGIs, to append to the card's PBOC DGIs."""
        keys = self.reservation.pick([line - self.first_line for line in lines])
        static = [static_data_of(self.setup, d) for d in card_dgis]
        return icc_dgis(self.setup, keys, static, pans, expiries, self.store)
