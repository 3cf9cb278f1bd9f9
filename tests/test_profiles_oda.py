"""The ``pboc.oda`` profile section (profiles/loader.py, OdaSpec): defaults, every field read,
errors that name the file, line and field; absent = no offline data authentication."""

from __future__ import annotations

import re

import pytest

from cardperso.errors import ProfileError
from cardperso.profiles.loader import load_profile, parse_profile
from cardperso.profiles.model import OdaSpec

# the reference profile without its own pboc.oda section (the 4-space lines under "  oda:")
REFERENCE = re.sub(
    r"\n  oda:\n(?:    .*\n)*", "\n",
    open(load_profile("ssc3-pboc").source, encoding="utf-8").read(),  # noqa: SIM115
)  # fmt: skip
ANCHOR = "  session_key: pboc"


def with_oda(block: str) -> str:
    assert ANCHOR in REFERENCE
    return REFERENCE.replace(ANCHOR, block + "\n" + ANCHOR, 1)


def test_defaults_and_required_fields() -> None:
    p = parse_profile(with_oda("  oda: {issuer_id: '621483', issuer_dgi: '0203', cert_dgi: '0204'}"),
                      "x.yaml")  # fmt: skip
    assert p.pboc is not None
    assert p.pboc.oda == OdaSpec(issuer_id="621483", issuer_dgi=0x0203, cert_dgi=0x0204)
    assert p.pboc.oda.ca_index == 0xF1 and p.pboc.oda.ddol == bytes.fromhex("9F3704")


def test_every_field() -> None:
    block = (
        "  oda:\n    issuer_id: '62148300'\n    issuer_dgi: '0301'\n    cert_dgi: '0302'\n"
        "    ssad_dgi: '0303'\n    ca_index: 'E2'\n    issuer_key: bank-oda-issuer\n"
        "    issuer_cert_expiry: '0630'\n    issuer_cert_serial: 00002A\n    ddol: 9F37049F0206\n"
        "    dac: 'BEEF'\n    icc_bits: 1152"
    )
    oda = parse_profile(with_oda(block), "x.yaml").pboc.oda  # type: ignore[union-attr]
    assert oda == OdaSpec("62148300", 0x0301, 0x0302, 0x0303, 0xE2, "bank-oda-issuer", "0630",
                          "00002A", bytes.fromhex("9F37049F0206"), b"\xbe\xef", 1152)  # fmt: skip


def test_shipped_profile_without_oda_has_none() -> None:
    profile = load_profile("ssc2-pboc")
    assert profile.pboc is not None and profile.pboc.oda is None


@pytest.mark.parametrize(
    ("block", "field", "reason"),
    [
        ("  oda: {issuer_dgi: '0203', cert_dgi: '0204'}", "pboc.oda.issuer_id", "required"),
        ("  oda: {issuer_id: '62', issuer_dgi: '0203', cert_dgi: '0204'}", "pboc.oda.issuer_id",
         "3 to 8 leading PAN digits"),
        ("  oda: {issuer_id: '621483', issuer_dgi: '02', cert_dgi: '0204'}",
         "pboc.oda.issuer_dgi", "DGI"),
        ("  oda: {issuer_id: '621483', issuer_dgi: '0203', cert_dgi: '0204', "
         "issuer_cert_expiry: '1330'}", "pboc.oda.issuer_cert_expiry", "MMYY"),
        ("  oda: {issuer_id: '621483', issuer_dgi: '0203', cert_dgi: '0204', icc_bits: 512}",
         "pboc.oda.icc_bits", ""),
        ("  oda: {issuer_id: '621483', issuer_dgi: '0203', cert_dgi: '0204', sda: true}",
         "pboc.oda.sda", ""),
    ],
)  # fmt: skip
def test_errors_name_the_field(block: str, field: str, reason: str) -> None:
    with pytest.raises(ProfileError) as exc:
        parse_profile(with_oda(block), "profiles/x.yaml")
    assert str(exc.value).startswith("profiles/x.yaml:"), str(exc.value)
    assert field in str(exc.value) and reason in str(exc.value)
