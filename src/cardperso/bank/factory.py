"""The factory's part of a two-stage card, sans-IO: SSSE as usual, then the bank's domain.

How this works
--------------
:func:`factory_card` runs the line's chip workflow (:func:`cardperso.chip.script.personalize`,
SSSE only: a two-stage profile has no ``pboc`` section, so no bank key is ever needed at the
factory), then :func:`create_bank_domain` opens a **new** secure channel to the issuer security
domain with the card's per-card keys and, by GlobalPlatform delegated management:

1. INSTALL [for install and make selectable] of the bank's supplementary security domain
   (built-in security-domain load file, the profile's privileges: security domain + delegated
   management);
2. INSTALL [for personalization] of the SSD, then PUT KEY: the bank's transport key set (from
   the delivery file, unwrapped from the key-exchange key and at once encrypted under the
   session DEK) becomes the SSD's first key set; the SSD is then PERSONALIZED and the ISD can
   never change its keys again;
3. INSTALL [for install] of the PBOC application (INSTALLED: not selectable, not personalized)
   and INSTALL [for extradition] of it to the SSD: from then on only the bank's domain can
   make it selectable and personalize it.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from cardperso.bank.twostage import TransportDelivery, TwoStage
from cardperso.card.isd import SD_MODULE, SD_PACKAGE
from cardperso.card.vcard import PBOC_MODULE, PBOC_PACKAGE
from cardperso.chip import script
from cardperso.chip.gp import (
    ISD_AID,
    install_command,
    install_for_extradition,
    install_for_perso,
    open_domain,
    put_key_command,
)
from cardperso.chip.model import CardData, ChipPlan, ChipResult
from cardperso.crypto.gp import StaticKeys
from cardperso.errors import CardPersoError, UsageError
from cardperso.keystore.base import KeyStore

__all__ = ["FactoryResult", "check_delivery", "create_bank_domain", "factory_card"]


@dataclass(frozen=True, slots=True)
class FactoryResult:
    chip: ChipResult
    ssd_aid: bytes
    pboc_aid: bytes


def _isd_keys(store: KeyStore, plan: ChipPlan, kdd: bytes) -> StaticKeys:
    kmc, method = (
        (plan.kmc, plan.diversification)
        if plan.put_key
        else (plan.transport_kmc, plan.transport_diversification)
    )
    (card,) = store.diversify_gp(kmc, [kdd], method, wrap_under=None)
    return StaticKeys(
        card.enc.secret().value, card.mac.secret().value, card.dek.secret().value, "3DES"
    )


def check_delivery(two: TwoStage, store: KeyStore, delivery: TransportDelivery) -> None:
    """Pre-flight of ``run --bank-delivery``, before the first card is fed: the delivery is for
    this profile's domain, and the store holds the key-exchange key that opens it (the keys are
    unwrapped once and dropped). A fault here is the operator's: :class:`UsageError`."""
    ssd = two.ssd
    if delivery.ssd_aid != ssd.aid or delivery.kvn != ssd.transport_kvn:
        raise UsageError(
            "pre-flight: the transport-key delivery is for another security domain or KVN"
        )
    if delivery.kek not in store.names():
        raise UsageError(
            f"pre-flight: key store {store.location} has no key {delivery.kek!r} (the "
            "key-exchange key the bank's transport keys are wrapped under); import it by key "
            f"ceremony: cardperso keys import-components --store STORE --name {delivery.kek} "
            "--algorithm 3DES"
        )
    try:
        delivery.unwrap(store)
    except CardPersoError as exc:
        raise UsageError(f"pre-flight: the bank's transport-key delivery: {exc}") from None


def create_bank_domain(
    two: TwoStage, plan: ChipPlan, store: KeyStore, delivery: TransportDelivery
) -> Generator[bytes, bytes, None]:
    """Create the bank's SSD with its transport keys and hand it the PBOC application."""
    ssd = two.ssd
    if delivery.ssd_aid != ssd.aid or delivery.kvn != ssd.transport_kvn:
        raise UsageError("the transport-key delivery is for another security domain or KVN")
    if plan.scp != "02":
        raise UsageError("two-stage cards use SCP02 on the issuer security domain")
    kvn = plan.new_kvn if plan.put_key else plan.kvn
    session = yield from open_domain(
        ISD_AID, lambda kdd: _isd_keys(store, plan, kdd), kvn=kvn, security_level=0x03
    )
    yield from session.send(
        install_command(0x0C, SD_PACKAGE, SD_MODULE, ssd.aid, ssd.privileges), "INSTALL SSD"
    )
    yield from session.send(install_for_perso(ssd.aid), "INSTALL [for personalization] SSD")
    transport = delivery.unwrap(store)
    command = put_key_command(transport, ssd.transport_kvn, session.encrypt)
    del transport  # only the DEK-encrypted command leaves this function
    yield from session.send(command, "PUT KEY (SSD transport keys)")
    yield from session.send(
        install_command(0x04, PBOC_PACKAGE, PBOC_MODULE, two.pboc_aid, b"\x00"), "INSTALL PBOC"
    )
    yield from session.send(
        install_for_extradition(ssd.aid, two.pboc_aid), "INSTALL [for extradition] PBOC"
    )
    session.close()


def factory_card(
    two: TwoStage,
    card: CardData,
    plan: ChipPlan,
    store: KeyStore,
    delivery: TransportDelivery,
) -> Generator[bytes, bytes, FactoryResult]:
    """One two-stage card at the factory: the line's chip workflow, then the bank's domain."""
    chip = yield from script.personalize(card, plan, store)
    yield from create_bank_domain(two, plan, store, delivery)
    return FactoryResult(chip, two.ssd.aid, two.pboc_aid)
