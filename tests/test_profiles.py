"""Profiles: the shipped ones load, and every schema error names the file, the line and the
field (issue 4, "Profiles")."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.errors import ProfileError
from cardperso.profiles.loader import list_profiles, load_profile, parse_profile

REFERENCE = Path(load_profile("ssc3-pboc").source).read_text(encoding="utf-8")


def test_shipped_profiles() -> None:
    assert {"ssc3-pboc", "ssc2-pboc", "ssc3-temporary"} <= set(list_profiles())
    ref = load_profile("ssc3-pboc")
    assert ref.ssse.algorithm == "SM4" and ref.pboc is not None and ref.generation == 3
    assert ref.ssse.df_name == "sx1.sh.社会保障".encode("gbk")
    ssc2 = load_profile("ssc2-pboc")
    assert ssc2.ssse.algorithm == "3DES" and all(f.name != "EF0D" for f in ssc2.ssse.files)
    tmp = load_profile("ssc3-temporary")
    assert tmp.pboc is None and tmp.mag_stripe is None
    assert len({ref.digest, ssc2.digest, tmp.digest}) == 3


def test_digest_ignores_comments_and_layout() -> None:
    a = parse_profile(REFERENCE, "a.yaml")
    b = parse_profile(
        "# a comment\n" + REFERENCE.replace("generation: 3", "generation:   3"), "b.yaml"
    )
    assert a.digest == b.digest
    c = parse_profile(REFERENCE.replace("try_limit: 3", "try_limit: 5"), "c.yaml")
    assert c.digest != a.digest


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


CASES = [
    # (old, new, field path, reason fragment, line anchor)
    ("photo: required", "photo: sometimes", "photo", "is not one of required", "photo: sometimes"),
    ("length: 6", "length: 2", "pin.length", "must be >= 4", "length: 2"),
    (
        "  algorithm: SM4",
        "  algorithm: RC4",
        "ssse.algorithm",
        "is not one of SM4, 3DES",
        "algorithm: RC4",
    ),
    (
        "{rec: 5, tag: 0x05, len: 4, fmt: cn, src: issue_date}",
        "{rec: 5, tag: 0x05, len: 4, fmt: cn, src: shoe_size}",
        "ssse.files[0].records[4].src",
        "unknown source 'shoe_size'",
        "src: shoe_size",
    ),
    (
        "{rec: 5, tag: 0x05, len: 4, fmt: cn, src: issue_date}",
        "{rec: 5, tag: 0x06, len: 4, fmt: cn, src: issue_date}",
        "ssse.files[0].records[5].tag",
        "tag 06 used twice in EF05",
        "{rec: 6, tag: 0x06",
    ),
    (
        '{rec: 3, tag: 0x03, len: 4, fmt: an, const: "3.00"}',
        '{rec: 3, tag: 0x03, len: 4, fmt: an, const: "3.000"}',
        "ssse.files[0].records[2].const",
        "is longer than 4 bytes",
        'const: "3.000"',
    ),
    ("  try_limit: 3", "  try_limit: 3\n  tries: 3", "pin.tries", "unknown field", "tries: 3"),
    (
        "  prefix: D156000005",
        "  prefix: D1560000",
        "ssse.card_id.prefix",
        "must be exactly 5 bytes",
        "prefix: D1560000",
    ),
    (
        "defaults: {balance: 0, limit: 15000",
        "defaults: {balance: 20000, limit: 15000",
        "pboc.ec.defaults",
        "balance <= limit",
        "defaults: {balance: 20000",
    ),
    ("  kmc: gp-kmc\n", "", "gp.kmc", "required field is missing", "  diversification: emv"),
]


@pytest.mark.parametrize(
    ("old", "new", "path", "reason", "anchor"), CASES, ids=[c[2] for c in CASES]
)
def test_errors_name_file_line_and_field(
    old: str, new: str, path: str, reason: str, anchor: str
) -> None:
    assert old in REFERENCE
    text = REFERENCE.replace(old, new, 1)
    with pytest.raises(ProfileError) as exc:
        parse_profile(text, "profiles/x.yaml")
    line = _line_of(text, anchor)
    msg = str(exc.value)
    assert msg.startswith(f"profiles/x.yaml:{line}: field '{path}': "), msg
    assert reason in msg
    assert exc.value.field == path


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(ProfileError, match=r"^p.yaml:3: YAML syntax error"):
        parse_profile("name: x\ntitle: y\n  bad: [\n", "p.yaml")


def test_unknown_profile_name() -> None:
    with pytest.raises(ProfileError, match="no profile named 'nope'"):
        load_profile("nope")


def test_cli_profile_show_and_check(tmp_path: Path) -> None:
    from cardperso.cli.main import _register, cli

    _register()
    runner = CliRunner()
    res = runner.invoke(cli, ["profile", "show", "ssc3-pboc"])
    assert res.exit_code == 0 and "df_name: 7378312E73682EC9E7BBE1B1A3D5CF" in res.output
    res = runner.invoke(cli, ["profile", "list"])
    assert "ssc3-temporary" in res.output
    bad = tmp_path / "ssc3-pboc.yaml"
    bad.write_text(REFERENCE.replace("length: 6", "length: 99"), encoding="utf-8")
    res = runner.invoke(cli, ["profile", "check", str(bad)])
    assert (
        res.exit_code == 1
        and f"{bad}:{_line_of(REFERENCE, 'length: 6')}: field 'pin.length'" in res.output
    )
    good = tmp_path / "good" / "ssc3-pboc.yaml"
    good.parent.mkdir()
    good.write_text(REFERENCE, encoding="utf-8")
    res = runner.invoke(cli, ["profile", "check", str(good)])
    assert res.exit_code == 0 and "OK" in res.output
