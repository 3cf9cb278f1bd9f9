"""``cardperso pki …``: the PKI application from the outside (docs/pki.md).

* ``pki ca``: the test PKI's root and issuing CA certificates from two SM2 keys of a key store;
* ``pki verify``: a finished card in a PC/SC reader: its certificates, their chain to the root,
  a PIN verification and a signature of a random challenge, each checked by cardperso **and** by
  the ``openssl`` command line (a second implementation);
* ``pki crl``: the revocation list of cancelled and lost cards from the registry's database.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cardperso.chip.pki import PkiReadout, admin_pin, load_certificates, read_pki, unblock_pin
from cardperso.chip.transport import drive
from cardperso.cli.keys import open_store
from cardperso.codec.numbers import mask_id
from cardperso.crypto import random_bytes
from cardperso.crypto.sm2 import DEFAULT_USER_ID, Sm2PublicKey, signature_to_der
from cardperso.errors import DataError, SignatureMismatch, UsageError
from cardperso.keystore.base import KeyStore
from cardperso.layouts import x509
from cardperso.outputs import atomic_write_text, check_paths
from cardperso.pki import ledger
from cardperso.pki.ca import Issuer, revocation_list, verify_certificate
from cardperso.pki.card_app import bcd_pin
from cardperso.pki.pem import to_pem
from cardperso.pki.testpki import make_test_pki
from cardperso.profiles.model import Profile
from cardperso.registry.schema import has_table

__all__ = ["COMMANDS"]

DISTID = "distid:" + DEFAULT_USER_ID.decode("ascii")


@click.group("pki")
def pki_group() -> None:
    """The PKI application: test CAs, card checks, the revocation list."""


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise UsageError("openssl is not installed (tools/bootstrap installs it)")
    return found


def _run(args: list[str]) -> tuple[bool, str]:
    done = subprocess.run(
        [_openssl(), *args], capture_output=True, text=True, timeout=60, check=False
    )
    out = (done.stdout + done.stderr).strip()
    # OpenSSL 3.0's verify may exit 0 after an error: its message decides (docs/pki.md)
    failed = done.returncode != 0 or "error" in out.lower() or "fail" in out.lower()
    return not failed, out.splitlines()[-1] if out else ""


def _user_id(cert: bytes, issuer: bytes) -> bytes:
    """The SM2 user ID ``cert``'s signature verifies with (default, else empty)."""
    public = x509.decode_certificate(issuer).public_key
    for user_id in (DEFAULT_USER_ID, b""):
        try:
            verify_certificate(cert, public, user_id)
            return user_id
        except SignatureMismatch:
            continue
    raise DataError("its signature does not verify with its issuer's key", field="certificate")


def _chain(card: bytes, pool: list[bytes]) -> list[bytes]:
    """``card``, its issuer, …, a self-signed root, all from ``pool``; DataError if broken."""
    chain = [card]
    while True:
        model = x509.decode_certificate(chain[-1])
        if model.subject == model.issuer and len(chain) > 1:
            return chain
        parent = next(
            (
                c
                for c in pool
                if x509.decode_certificate(c).subject == model.issuer and c not in chain
            ),
            None,
        )
        if parent is None:
            raise DataError("the chain file has no certificate of its issuer", field="chain")
        chain.append(parent)
        if len(chain) > 5:
            raise DataError("the chain is longer than 5", field="chain")


def _pin(pin_file: Path | None) -> bytes:
    if pin_file is not None:
        try:
            text = pin_file.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--pin-file {pin_file}: cannot read it ({exc})") from None
    else:
        text = click.prompt("PKI PIN", hide_input=True)
    try:
        return bcd_pin(text)
    except ValueError:
        raise DataError("a PIN is 4 to 12 digits", field="pin") from None


def check_readout(
    got: PkiReadout,
    challenge: bytes,
    pool: list[bytes],
    work: Path,
    echo: Callable[[str], None] = click.echo,
) -> bool:
    """Every check of ``pki verify`` on what the card gave, each reported by ``echo`` as an
    ``OK``/``FAIL`` line; whether all passed."""

    def report(ok: bool, what: str) -> bool:
        echo(f"{'OK  ' if ok else 'FAIL'} {what}")
        return ok

    good = True
    chain = _chain(got.signing_certificate, pool)
    card = x509.decode_certificate(got.signing_certificate)
    number = card.subject.get("serialNumber") or ""
    shown = number if "*" in number else mask_id(number)
    good &= report(True, f"signing certificate: serial {card.serial:X}, holder {shown}")
    ids = [_user_id(c, p) for c, p in itertools.pairwise(chain)]
    names = " -> ".join(x509.decode_certificate(c).subject.get("CN") or "?" for c in chain[1:])
    good &= report(True, f"chain to the root verifies (cardperso): card -> {names}")
    paths = []
    for n, cert in enumerate(chain):
        path = work / f"c{n}.pem"
        path.write_text(to_pem(cert))
        paths.append(path)
    for n, user_id in enumerate(ids):  # OpenSSL 3.0 applies -vfyopt to one link: link by link
        args = ["verify", "-CAfile", str(paths[n + 1])]
        if n + 1 < len(chain) - 1:
            args.append("-partial_chain")
        if user_id:
            args += ["-vfyopt", DISTID]
        ok, line = _run([*args, str(paths[n])])
        good &= report(ok, f"openssl verify link {n}: {line.rsplit(': ', 1)[-1]}")
    if got.encryption_certificate is not None:
        enc = x509.decode_certificate(got.encryption_certificate)
        same_issuer = enc.issuer == card.issuer
        try:
            _user_id(got.encryption_certificate, chain[1])
            ok = same_issuer
        except DataError:
            ok = False
        good &= report(ok, f"encryption certificate {enc.serial:X} signed by the same CA")
    else:
        good &= report(True, "no encryption certificate on the card")
    try:
        Sm2PublicKey.from_bytes(card.public_key).verify(got.signature, challenge)
        ok = True
    except SignatureMismatch:
        ok = False
    good &= report(ok, f"the card's signature of a {len(challenge)}-byte challenge (cardperso)")
    (work / "challenge.bin").write_bytes(challenge)
    (work / "sig.der").write_bytes(signature_to_der(got.signature))
    (work / "pub.pem").write_text(to_pem(x509.public_key_info(card.public_key), "PUBLIC KEY"))
    ok, line = _run(["pkeyutl", "-verify", "-pubin", "-inkey", str(work / "pub.pem"), "-rawin",
                     "-digest", "sm3", "-pkeyopt", DISTID, "-in", str(work / "challenge.bin"),
                     "-sigfile", str(work / "sig.der")])  # fmt: skip
    good &= report(ok, f"openssl pkeyutl -verify (SM2, SM3, default ID): {line}")
    return good


@pki_group.command("verify")
@click.option("--reader", "-r", required=True, help="PC/SC reader name")
@click.option("--chain", "chain_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="PEM file with the issuing CA and the root certificates")  # fmt: skip
@click.option("--pin-file", type=click.Path(dir_okay=False, path_type=Path),
              help="file holding the PKI PIN (else asked for, not echoed)")  # fmt: skip
def verify_cmd(reader: str, chain_file: Path, pin_file: Path | None) -> None:
    """Read the card's certificates, check their chain to the root, VERIFY the PIN and have the
    card sign a random challenge; cardperso and openssl check each. Exit 1 when one fails."""
    if not verify_card(reader, load_certificates(chain_file), _pin(pin_file)):
        raise DataError("the card's PKI application did not verify", field="pki")


def verify_card(
    reader: str,
    pool: list[bytes],
    pin: bytes,
    echo: Callable[[str], None] = click.echo,
    *,
    wait: float = 0.0,
) -> bool:
    """What ``pki verify`` does with the card in ``reader`` (``pin`` packed BCD, ``pool`` the
    chain's certificates), each check reported by ``echo``; whether all passed. ``wait``: how
    long to wait for the card to be seen in the reader (pcscd polls a reader's presence, so a
    card put in a moment ago may not be there yet)."""
    from cardperso.devices import pcsc

    if wait > 0:
        pcsc.wait_for_card(reader, wait)
    challenge = random_bytes(32)
    # -vv: the APDU trace (PINs, keys and records redacted) goes to the debug log
    trace = pcsc.log_trace() if pcsc.log.isEnabledFor(logging.DEBUG) else None
    with pcsc.PcscTransport(reader, trace=trace) as transport:
        got = drive(read_pki(pin, challenge), transport.transmit)
    echo("OK   PIN verified by the card")
    with tempfile.TemporaryDirectory(prefix="cardperso-pki-") as tmp:
        return check_readout(got, challenge, pool, Path(tmp), echo)


@pki_group.command("unblock")
@click.option("--reader", "-r", required=True, help="PC/SC reader name")
@click.option("--keys", "-k", "keys_spec", required=True, help="key store with the PIN master")
@click.option("--admin-pin-key", default="pki-admin-pin", show_default=True,
              help="the profile's pki.admin_pin_key")  # fmt: skip
@click.option("--card-no", required=True, help="the card's social-security card number")
def unblock_cmd(reader: str, keys_spec: str, admin_pin_key: str, card_no: str) -> None:
    """Unblock the user PIN of the card in ``reader``: VERIFY its administrator PIN (derived
    from the store's master and the card number), then RESET RETRY COUNTER."""
    from cardperso.devices import pcsc

    if not re.fullmatch(r"[0-9A-Z]{9}", card_no):
        raise DataError("a card number is 9 characters 0-9, A-Z", field="card_no")
    admin = admin_pin(open_store(keys_spec), admin_pin_key, card_no)
    with pcsc.PcscTransport(reader) as transport:
        drive(unblock_pin(admin), transport.transmit)
    click.echo(f"OK   user PIN of card {card_no} unblocked (tries back to the limit)")


@pki_group.command("crl")
@click.option("--db", "db_url", required=True, help="the registry's database (SQLite or URL)")
@click.option("--keys", "-k", "keys_spec", required=True, help="key store with the CA key")
@click.option("--issuer-key", default="pki-issuing-ca", show_default=True)
@click.option("--issuer-cert", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ca-user-id", type=click.Choice(["default", "empty"]), default="default",
              show_default=True, help="SM2 user ID of the CA's signature (empty: OpenSSL 3.0 tests)")  # fmt: skip
@click.option("--days", type=click.IntRange(1, 366), default=7, show_default=True,
              help="next update after this many days")  # fmt: skip
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path))
def crl_cmd(
    db_url: str, keys_spec: str, issuer_key: str, issuer_cert: Path, ca_user_id: str, days: int,
    out: Path,
) -> None:  # fmt: skip
    """Write the revocation list (PEM, atomically) of every certificate of a cancelled,
    suspended (lost) or superseded card."""
    from cardperso.storage.db import connect

    check_paths({"--out": out}, {"--issuer-cert": issuer_cert})
    cert = load_certificates(issuer_cert)[0]
    signer = open_store(keys_spec).sm2_signer(issuer_key)
    if x509.decode_certificate(cert).public_key != signer.public_key.to_bytes():
        raise UsageError(f"--issuer-cert {issuer_cert} certifies another key than {issuer_key!r}")
    db = connect(db_url)
    try:
        if not has_table(db, "reg_cards"):
            raise UsageError(f"--db: no registry in {db_url!r} (cardperso db upgrade)")
        ledger.ensure_tables(db)
        entries = ledger.revoked_entries(db)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        with db.transaction():
            number = ledger.next_crl_number(db, len(entries))
            der = revocation_list(
                Issuer(signer, cert, b"" if ca_user_id == "empty" else DEFAULT_USER_ID),
                entries, number=number, this_update=now,
                next_update=now + dt.timedelta(days=days),
            )  # fmt: skip
            atomic_write_text(out, to_pem(der, "X509 CRL"), mode=0o644)
    finally:
        db.close()
    click.echo(f"CRL {number}: {len(entries)} revoked certificate(s) -> {out}")


@pki_group.command("ca")
@click.option("--keys", "-k", "keys_spec", required=True, help="key store with both CA keys")
@click.option("--root-key", default="pki-root", show_default=True)
@click.option("--issuing-key", default="pki-issuing-ca", show_default=True)
@click.option("--organization", default="cardperso test PKI", show_default=True)
@click.option("--ca-user-id", type=click.Choice(["default", "empty"]), default="default",
              show_default=True)  # fmt: skip
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def ca_cmd(keys_spec: str, root_key: str, issuing_key: str, organization: str, ca_user_id: str,
           out_dir: Path) -> None:  # fmt: skip
    """Write root.pem, issuing-ca.pem and chain.pem (both) for two SM2 keys of a store: the
    test PKI a profile's ``pki`` section names (docs/pki.md)."""
    store = open_store(keys_spec)
    files = make_test_pki(store.sm2_signer(root_key), store.sm2_signer(issuing_key),
                           organization=organization,
                           user_id=b"" if ca_user_id == "empty" else DEFAULT_USER_ID)  # fmt: skip
    write_pki_files(out_dir, files)
    click.echo(f"root and issuing CA certificates in {out_dir}")


def demo_product(store: KeyStore, state_dir: Path, base: str = "ssc3-pboc") -> Profile:
    """The demo's product: ``base`` with the PKI application when the store holds the test
    PKI's CA keys (:func:`cardperso.sim.pki_demo.pki_product`, in ``state_dir/product``,
    found by name while the command runs), else ``base`` itself; one line says which."""
    from cardperso.profiles.loader import load_profile
    from cardperso.sim.pki_demo import pki_product

    path = pki_product(base, store, state_dir / "product")
    if path is None:
        click.echo(
            f"   product {base}: the key store has no test PKI CA keys (pki-root, "
            "pki-issuing-ca), so the cards carry no PKI application"
        )
        return load_profile(base)
    old = os.environ.get("CARDPERSO_PROFILES")
    os.environ["CARDPERSO_PROFILES"] = os.pathsep.join([str(path.parent), *filter(None, [old])])

    def restore() -> None:
        if old is None:
            os.environ.pop("CARDPERSO_PROFILES", None)
        else:
            os.environ["CARDPERSO_PROFILES"] = old

    click.get_current_context().call_on_close(restore)
    profile = load_profile(path)
    click.echo(
        f"   product {profile.name}: {base} with the PKI application (SM2 certificates from the "
        f"key store's test PKI: {path.parent / 'pki'})"
    )
    return profile


def demo_check(reader: Any, state_dir: Path, perso: Path, store: KeyStore) -> tuple[bool, str]:
    """The demo's last step: the first produced card put back in ``reader`` (a simulated
    line's reader) and checked as ``pki verify`` does, with the record's PIN; whether every
    check passed and one line saying so (the failing check's line otherwise)."""
    from cardperso.card.vcard import VirtualCard
    from cardperso.sim.pki_demo import card_pin

    with (state_dir / "results.csv").open(newline="", encoding="utf-8") as fh:
        row = next((r for r in csv.DictReader(fh) if r["outcome"] == "produced"), None)
    if row is None:
        return False, "no card was produced: nothing to check"
    serial = row["chip_serial"]
    pin = card_pin(perso, store, int(row["record"]))
    chain = load_certificates(state_dir / "product" / "pki" / "chain.pem")
    lines: list[str] = []
    reader.insert(VirtualCard.load(state_dir / "line" / "output" / f"{serial}.json"))
    try:
        good = verify_card(reader.name, chain, pin, lines.append, wait=10.0)
    finally:
        reader.remove()
    if not good:
        return False, f"card {serial}: " + next(x for x in lines if x.startswith("FAIL"))
    names = next(x for x in lines if "chain to the root" in x).split(": ", 1)[1]
    return True, (
        f"card {serial}: PIN verified, chain {names} and the card's signature of a random "
        f"challenge checked by cardperso and openssl ({len(lines)} checks OK)"
    )


def write_pki_files(out_dir: Path, files: dict[str, str]) -> None:
    """Write :func:`~cardperso.pki.testpki.make_test_pki`' certificates (public: 0644)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        atomic_write_text(out_dir / name, text, mode=0o644)


COMMANDS = (pki_group,)
