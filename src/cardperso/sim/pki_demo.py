"""The demo's product: the reference profile with the PKI application, certified by the key
store's test PKI (``cardperso demo``, docs/pki.md).

How this works
--------------
:func:`pki_product` writes, in the demo's directory, the test PKI's certificates made from the
store's SM2 CA keys (``pki-root``, ``pki-issuing-ca``: fresh stores and the sample store hold
them) and a product profile that is the reference profile's own text under a new name with a
``pki`` section added: the cards get the PKI application after the reference product's
applications, personalized on the line like them. A store without the CA keys gets the
reference product unchanged (the caller says so).

:func:`card_pin` is the PIN a made card's PKI application was given (the record's, from the
personalization file), for the demo's closing ``pki verify`` on one card.

Why a product of its own and not the reference profile itself: every line run of the
reference product would then need the PKI's CA keys and certificate, which the stores many
tests and older key files build do not have, and each card would take about twice the
commands (docs/pki.md, "The PKI in the demo").
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cardperso.chip.pki import record_pin
from cardperso.chip.plan import card_data, chip_plan
from cardperso.errors import UsageError
from cardperso.keystore.base import KeyStore
from cardperso.keystore.sm2keys import PKI_CA_KEYS, PKI_ISSUING_KEY, PKI_ROOT_KEY
from cardperso.outputs import atomic_write_text
from cardperso.pki.testpki import make_test_pki
from cardperso.prep.container import iter_records, read_header
from cardperso.profiles.loader import load_profile

__all__ = ["PKI_SECTION", "card_pin", "pki_product"]

#: The ``pki`` section the demo's product adds (the certificate relative to the profile).
PKI_SECTION = """
# The PKI application (docs/pki.md), added by `cardperso demo`: the card makes its signing pair,
# the key store's test issuing CA certifies it, the issuer's encryption pair comes in its key
# envelope; the PIN is the cardholder's.
pki:
  issuing_ca_key: {issuing}
  issuing_ca_certificate: pki/issuing-ca.pem
  encryption_pair: true
"""


def pki_product(base: str, store: KeyStore, directory: Path) -> Path | None:
    """Write ``directory/pki/{root,issuing-ca,chain}.pem`` and ``directory/<base>-pki.yaml``
    (module docstring); the profile's path, or ``None`` when ``store`` lacks the CA keys."""
    if not set(PKI_CA_KEYS) <= set(store.names()):
        return None
    files = make_test_pki(store.sm2_signer(PKI_ROOT_KEY), store.sm2_signer(PKI_ISSUING_KEY))
    (directory / "pki").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        atomic_write_text(directory / "pki" / name, text, mode=0o644)
    source = Path(load_profile(base).source)
    name = f"{base}-pki"
    text = source.read_text(encoding="utf-8")
    text = re.sub(r"^name: *\S+", f"name: {name}", text, count=1, flags=re.MULTILINE)
    text = re.sub(r"^(title: .*)$", r"\1, with the PKI application", text, count=1,
                  flags=re.MULTILINE)  # fmt: skip
    path = directory / f"{name}.yaml"
    atomic_write_text(path, text + PKI_SECTION.format(issuing=PKI_ISSUING_KEY), mode=0o644)
    return path


def card_pin(perso: Path, store: KeyStore, record: int) -> bytes:
    """The PIN (packed BCD) the card of ``record`` (its input line: the results file's
    ``record`` column) was personalized with: the record's PIN block unwrapped, as the line's
    PKI step does."""
    with perso.open("rb") as fh:
        header, _ = read_header(fh)
    profile = load_profile(header.profile)
    plan = chip_plan(profile, header)
    for index, body in iter_records(perso, store):
        if index == record:
            card = card_data(header, body, index)
            ssse = next(a for a in card.apps if a.aid == plan.ssse_aid)
            return record_pin(store, plan.kek, ssse)
    raise UsageError(f"record {record} is not in {os.fspath(perso)}")
