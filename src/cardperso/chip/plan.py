"""From a profile and a perso-file record to what the chip engine needs (a station's plan and
one card's data)."""

from __future__ import annotations

from cardperso.chip.model import CardApp, CardData, ChipPlan
from cardperso.codec import tlv
from cardperso.codec.dgi import parse_dgis
from cardperso.layouts.persofile import PersoHeader, PersoRecordBody
from cardperso.profiles.model import Profile

#: The ATR prefix of cardperso's virtual cards (docs/card-dgi-map.md); a profile for real
#: cards would carry its own.
VIRTUAL_CARD_ATR_PREFIX = bytes.fromhex("3B8C8001")


def chip_plan(
    profile: Profile,
    header: PersoHeader,
    *,
    scp: str | None = None,
    kmc: str | None = None,
    transport_kmc: str | None = None,
    verify_ac: bool = True,
    atr_prefix: bytes = VIRTUAL_CARD_ATR_PREFIX,
) -> ChipPlan:
    """The station's plan for cards of ``profile`` from the file described by ``header``."""
    chosen = scp or profile.gp.scp
    aes = chosen == "03"
    own = chosen == profile.gp.scp
    default_kmc = profile.gp.kmc if own else ("gp-kmc-aes" if aes else "gp-kmc")
    # blank cards are opened with the card vendor's transport key, never with the issuer KMC
    default_transport = (
        profile.gp.transport_kmc if own else ("gp-transport-aes" if aes else "gp-transport")
    )
    return ChipPlan(
        kmc=kmc or default_kmc,
        kek=header.kek_name,
        transport_kmc=transport_kmc or default_transport,
        transport_diversification=profile.gp.transport_diversification if own else "none",
        new_kvn=profile.gp.kvn,
        scp=chosen,
        i=profile.gp.i if chosen == "02" else 0x70,
        diversification=profile.gp.diversification
        if chosen == profile.gp.scp
        else ("kdf3" if aes else "emv"),
        atr_prefix=atr_prefix,
        card_id_check=profile.ssse.card_id.tail,
        ssse_aid=profile.ssse.df_name,
        ssse_algorithm=profile.ssse.algorithm,
        ssse_generation=profile.generation,
        ssse_ia_p2=0x00 if profile.ssse.internal_auth_p2 == "zero" else 0x01,
        imk_ac=profile.pboc.imk_ac if profile.pboc is not None else "",
        verify_ac=verify_ac and profile.pboc is not None,
        dgi_format=profile.store_data.p1_dgi_format,
        store_data_order=profile.store_data.order,
    )


def _psn(dgis: tuple[tuple[int, bytes], ...]) -> str:
    for dgi, value in dgis:
        if dgi >> 8 in range(1, 11):
            try:
                found = tlv.find(tlv.parse(value), 0x5F34)
            except Exception:  # noqa: S112 - a record without TLVs is simply skipped
                continue
            if found is not None:
                return found.value.hex()
    return "00"


def card_data(header: PersoHeader, body: PersoRecordBody, index: int) -> CardData:
    """The chip workflow's view of one perso-file record."""
    refs = {a.aid: a for a in header.apps}
    apps = []
    psn = "00"
    for app in body.apps:
        ref = refs.get(app.aid)
        dgis = tuple(parse_dgis(app.dgis))
        if ref is not None and ref.name.lower().startswith("pboc"):
            psn = _psn(dgis)
        apps.append(
            CardApp(
                ref.name if ref else app.aid.hex(),
                app.aid,
                dgis,
                frozenset(ref.secret_dgis if ref else ()),
            )
        )
    return CardData(index, body.card_no, body.pan, psn, tuple(apps))
