"""Load ``profiles/*.yaml`` into :class:`~cardperso.profiles.model.Profile` objects.

How this works
--------------
1. :func:`cardperso.profiles.schema.load_yaml` composes the file into nodes with line marks.
2. :data:`SCHEMA` checks shapes, types, ranges and unknown keys, naming ``file:line`` and the
   field path of the first problem.
3. :func:`_semantic` checks what a schema cannot (record tags unique in a file, a record has
   exactly one of ``src``/``const``, sources are known input or derived fields, constants fit
   their record), again naming the line.
4. The plain data is turned into frozen dataclasses; the profile *digest* is SHA-256 over the
   canonical JSON of the checked data, so comments and formatting do not change it.

Profiles are found by name in ``$CARDPERSO_PROFILES`` (a directory) or the repository's
``profiles/`` directory; a path to a ``.yaml`` file is loaded as is.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from cardperso.errors import ProfileError
from cardperso.profiles import schema as s
from cardperso.profiles.fields import INPUT_FIELDS
from cardperso.profiles.model import (
    DERIVED_SOURCES,
    CardIdSpec,
    ConstantDgi,
    EcSpec,
    FaceField,
    FileSpec,
    GpSpec,
    MagStripeSpec,
    OdaSpec,
    PbocSpec,
    PinSpec,
    PkiSpec,
    Profile,
    RecordSpec,
    SsseKeySpec,
    SsseSpec,
    StoreDataSpec,
    TlvItem,
)

__all__ = ["SCHEMA", "TWO_STAGE", "list_profiles", "load_profile", "parse_profile", "profile_dirs"]

#: What the personalization file's header can hold (a length byte before each name and list,
#: :mod:`cardperso.layouts.persofile`): names of at most 255 bytes, at most 255 card-face
#: fields, master keys, or encrypted DGIs per application (the SSSE keys plus its PIN DGI).
#: ``profile check`` refuses a profile beyond them, so that no batch fails half-made.
HEADER_MAX = 255
_KEY_NAME = s.Str(pattern=r"[a-z0-9][a-z0-9._-]*", max_len=HEADER_MAX, hint="a key-store key name")
_DIGITS = r"[0-9]+"
_HEX_TAG = s.Str(pattern=r"(?:[0-9A-Fa-f]{2}){1,3}", hint="a hex tag of 1-3 bytes")
_DGI = s.Str(pattern=r"[0-9A-Fa-f]{4}", hint="a 4-hex-digit DGI")
_AMOUNT = s.Int(min=0, max=999_999_999_999)
#: ``pboc.oda`` (OdaSpec, docs/card-dgi-map.md): absent = no offline data authentication
_ODA = s.Map(
    {
        "issuer_id": s.Str(pattern=r"[0-9]{3,8}", hint="3 to 8 leading PAN digits"),
        "issuer_dgi": _DGI,
        "cert_dgi": _DGI,
        "ssad_dgi": _DGI,
        "ca_index": s.Hex(length=1),
        "issuer_key": _KEY_NAME,
        "issuer_cert_expiry": s.Str(pattern=r"(0[1-9]|1[0-2])[0-9]{2}", hint="MMYY"),
        "issuer_cert_serial": s.Str(pattern=r"[0-9A-Fa-f]{6}", hint="6 hex digits"),
        "ddol": s.Hex(min_len=2, max_len=64),
        "dac": s.Hex(length=2),
        "icc_bits": s.Int(min=1024, max=1984),
    },
    required=("issuer_id", "issuer_dgi", "cert_dgi"),
)

_RECORD = s.Map(
    {
        "rec": s.Int(min=1, max=254),
        "tag": s.Int(min=0, max=255),
        "len": s.Int(min=1, max=255),
        "fmt": s.Enum(("b", "an", "gbk", "cn", "n")),
        "src": s.Str(pattern=r"[a-z_]+", hint="a field name"),
        "const": s.Any_(),
    },
    required=("rec", "tag", "len", "fmt"),
)

_TLV = s.Map({"tag": _HEX_TAG, "value": s.Hex(max_len=252)}, required=("tag", "value"))

#: Optional ``two_stage`` section (factory + bank personalization, read by cardperso.bank;
#: docs/bank.md): the bank's supplementary security domain and the profile whose ``pboc``
#: section the bank personalizes with its own keys.
TWO_STAGE = s.Map(
    {
        "ssd": s.Map(
            {
                "aid": s.Hex(min_len=5, max_len=16),
                "privileges": s.Hex(min_len=1, max_len=3),
                "transport_kvn": s.Int(min=1, max=0x7F),
                "bank_kvn": s.Int(min=1, max=0x7F),
                "key_exchange_kek": _KEY_NAME,
                "transport_kmc": _KEY_NAME,
                "kmc": _KEY_NAME,
                "diversification": s.Str(pattern=r"[a-z0-9-]+", hint="a method name"),
            },
            required=("aid", "privileges", "transport_kvn", "bank_kvn"),
            defaults={
                "key_exchange_kek": "kek-exchange",
                "transport_kmc": "bank-ssd-transport-kmc",
                "kmc": "bank-kmc",
                "diversification": "emv",
            },
        ),
        "bank_profile": s.Str(pattern=r"[a-z0-9][a-z0-9-]*", hint="a profile name"),
    },
    required=("ssd", "bank_profile"),
)

SCHEMA = s.Map(
    {
        "name": s.Str(
            pattern=r"[a-z0-9][a-z0-9-]*", max_len=HEADER_MAX, hint="a profile name (a-z, 0-9, -)"
        ),
        "title": s.Str(min_len=1),
        "generation": s.Int(min=1, max=3),
        "photo": s.Enum(("required", "optional", "absent")),
        # no default: absent (= card) keeps the digest of profiles written before it existed
        "photo_spec": s.Enum(("card", "none")),
        "pin": s.Map(
            {
                "source": s.Enum(("seeded", "input", "input-or-seeded")),
                "length": s.Int(min=4, max=12),
                "try_limit": s.Int(min=1, max=15),
            },
            required=("source", "length", "try_limit"),
        ),
        "ssse": s.Map(
            {
                "df_name": s.Hex(min_len=5, max_len=16),
                "algorithm": s.Enum(("SM4", "3DES")),
                "algorithm_indicator": s.Int(min=0, max=255),
                "card_id": s.Map(
                    {
                        "prefix": s.Hex(length=5),
                        "serial_placeholder": s.Hex(length=4),
                        "tail": s.Enum(("chip-serial", "ffffffff")),
                    },
                    required=("prefix",),
                    defaults={"serial_placeholder": bytes(4), "tail": "chip-serial"},
                ),
                "files": s.ListOf(
                    s.Map(
                        {
                            "name": s.Str(pattern=r"EF[0-9A-F]{2}", hint="an EF name like EF05"),
                            "sfi": s.Int(min=1, max=30),
                            "records": s.ListOf(_RECORD, min_len=1),
                        },
                        required=("name", "sfi", "records"),
                    ),
                    min_len=1,
                ),
                "key_factor": s.Enum(("card_no_body",)),
                "internal_auth_p2": s.Enum(("key-id", "zero")),
                "keys": s.ListOf(
                    s.Map(
                        {
                            "id": s.Int(min=0, max=255),
                            "name": s.Str(min_len=1),
                            "master": _KEY_NAME,
                            "version": s.Int(min=0, max=255),
                        },
                        required=("id", "name", "master"),
                        defaults={"version": 1},
                    ),
                    max_len=HEADER_MAX - 1,
                ),
            },
            required=("df_name", "algorithm", "algorithm_indicator", "card_id", "files", "keys"),
            defaults={"key_factor": "card_no_body", "internal_auth_p2": "key-id"},
        ),
        "pboc": s.Map(
            {
                "aid": s.Hex(min_len=5, max_len=16),
                "keys": s.Map(
                    {
                        "ac": _KEY_NAME,
                        "smi": _KEY_NAME,
                        "smc": _KEY_NAME,
                        "derivation": s.Enum(("emv-a",)),
                    },
                    required=("ac", "smi", "smc"),
                    defaults={"derivation": "emv-a"},
                ),
                "service_code": s.Str(pattern=r"[0-9]{3}", hint="3 digits"),
                "track2_discretionary": s.Str(pattern=r"[0-9]{0,13}", hint="up to 13 digits"),
                "latin_name_default": s.Str(pattern=r"[ -~]{2,26}", hint="2-26 ASCII characters"),
                "extended_name_gbk": s.Bool(),
                "id_type": s.Int(min=0, max=99),
                "app_version": s.Hex(length=2),
                "iad": s.Hex(min_len=1, max_len=32),
                "session_key": s.Enum(("pboc", "emv-csk")),
                "ec": s.Map(
                    {
                        "currency": s.Str(pattern=r"[0-9]{4}", hint="4 digits (n3, 0156 = CNY)"),
                        "auth_code": s.Str(pattern=r"[ -~]{6}", hint="6 ASCII characters"),
                        "max_balance_limit": _AMOUNT,
                        "max_single_limit": _AMOUNT,
                        "max_reset_threshold": _AMOUNT,
                        "defaults": s.Map(
                            {
                                "balance": _AMOUNT,
                                "limit": _AMOUNT,
                                "single_limit": _AMOUNT,
                                "reset_threshold": _AMOUNT,
                            },
                            required=("balance", "limit", "single_limit", "reset_threshold"),
                        ),
                    },
                    required=(
                        "currency",
                        "auth_code",
                        "max_balance_limit",
                        "max_single_limit",
                        "max_reset_threshold",
                        "defaults",
                    ),
                ),
                "constant_dgis": s.ListOf(
                    s.Map(
                        {"dgi": _DGI, "template": _HEX_TAG, "tlv": s.ListOf(_TLV, min_len=1)},
                        required=("dgi", "tlv"),
                    )
                ),
                "oda": _ODA,
            },
            required=("aid", "keys", "service_code", "ec", "iad", "constant_dgis"),
            defaults={
                "track2_discretionary": "00000",
                "latin_name_default": " /",
                "extended_name_gbk": True,
                "id_type": 0,
                "app_version": bytes.fromhex("0030"),
                "session_key": "pboc",
            },
        ),
        "gp": s.Map(
            {
                "kmc": _KEY_NAME,
                "diversification": s.Str(pattern=r"[a-z0-9-]+", hint="a method name"),
                "scp": s.Enum(("02", "03")),
                "i": s.Int(min=0, max=255),
                "kvn": s.Int(min=0, max=255),
                # no defaults: absent keeps the digest of profiles written before they existed
                "transport_kmc": _KEY_NAME,
                "transport_diversification": s.Str(pattern=r"[a-z0-9-]+", hint="a method name"),
            },
            required=("kmc", "scp"),
            defaults={"diversification": "emv", "i": 0x55, "kvn": 0},
        ),
        "store_data": s.Map(
            {
                "encrypted_dgis": s.ListOf(_DGI),
                "pad_encrypted": s.Bool(),
                "p1_dgi_format": s.Int(min=0, max=255),
                # no default: absent keeps the digest of profiles written before it existed
                "order": s.Enum(("prepared", "encrypted-first")),
            },
            required=("encrypted_dgis",),
            defaults={"pad_encrypted": False, "p1_dgi_format": 0x00},
        ),
        "transport_kek": _KEY_NAME,
        "card_face": s.ListOf(
            s.Map(
                {
                    "name": s.Str(pattern=r"[a-z_]+", max_len=HEADER_MAX, hint="a face field name"),
                    "src": s.Str(),
                },
                required=("name", "src"),
            ),
            max_len=HEADER_MAX,
        ),
        "mag_stripe": s.Map(
            {"track1": s.Bool(), "track2": s.Bool()},
            defaults={"track1": True, "track2": True},
        ),
        "two_stage": TWO_STAGE,
        "pki": s.Map(
            {
                "issuing_ca_key": _KEY_NAME,
                "issuing_ca_certificate": s.Str(min_len=1, max_len=HEADER_MAX),
                "organization": s.Str(min_len=1, max_len=64),
                "organizational_unit": s.Str(min_len=1, max_len=64),
                "country": s.Str(pattern=r"[A-Z]{2}", hint="a two-letter country code"),
                "mask_identity": s.Bool(),
                "validity_days": s.Int(min=1, max=36500),
                "pin_tries": s.Int(min=1, max=15),
                "encryption_pair": s.Bool(),
                "ca_user_id": s.Enum(("default", "empty")),
                "admin_pin_key": _KEY_NAME,
                "signing_key": s.Enum(("card", "import")),
                "key_pool": s.Str(min_len=1, max_len=HEADER_MAX),
            },
            required=("issuing_ca_key", "issuing_ca_certificate"),
        ),
        #: a production product: runs refuse sample/test keys and software key stores
        "production": s.Bool(),
    },
    required=("name", "title", "generation", "photo", "pin", "ssse", "gp", "store_data"),
    defaults={"transport_kek": "transport-kek", "card_face": []},
)

#: Names a card-face field or a magnetic-stripe template may use besides input fields.
TEMPLATE_VALUES = (
    "pan",
    "expiry_yymm",
    "service_code",
    "discretionary",
    "name_latin",
    "card_id",
    "bank_code",
)


def _canonical(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _semantic(data: dict[str, Any], root: yaml.Node, filename: str) -> None:
    def fail(path: str, reason: str) -> ProfileError:
        return s.fail_at(s.find_node(root, path), filename, path, reason)

    sources = set(INPUT_FIELDS) | set(DERIVED_SOURCES)
    ssse = data["ssse"]
    sfis: set[int] = set()
    for fi, f in enumerate(ssse["files"]):
        fpath = f"ssse.files[{fi}]"
        if f["sfi"] in sfis:
            raise fail(f"{fpath}.sfi", "SFI used by two files")
        sfis.add(f["sfi"])
        tags: set[int] = set()
        recs: set[int] = set()
        for ri, r in enumerate(f["records"]):
            rpath = f"{fpath}.records[{ri}]"
            if r["tag"] in tags:
                raise fail(f"{rpath}.tag", f"tag {r['tag']:02X} used twice in {f['name']}")
            if r["rec"] in recs:
                raise fail(f"{rpath}.rec", f"record {r['rec']} used twice in {f['name']}")
            tags.add(r["tag"])
            recs.add(r["rec"])
            has_src, has_const = "src" in r, "const" in r
            if has_src == has_const:
                raise fail(rpath, "a record needs exactly one of 'src' or 'const'")
            if has_src and r["src"] not in sources:
                raise fail(f"{rpath}.src", f"unknown source {r['src']!r}")
            if has_const:
                _check_const(r, fail, f"{rpath}.const")
    ids = [k["id"] for k in ssse["keys"]]
    if len(ids) != len(set(ids)):
        raise fail("ssse.keys", "two keys share a card key id")
    pboc = data.get("pboc")
    if pboc is not None:
        ec = pboc["ec"]
        d = ec["defaults"]
        if not (d["balance"] <= d["limit"] <= ec["max_balance_limit"]):
            raise fail("pboc.ec.defaults", "defaults need balance <= limit <= max_balance_limit")
        if d["single_limit"] > min(d["limit"], ec["max_single_limit"]):
            raise fail("pboc.ec.defaults.single_limit", "exceeds the limit or its maximum")
        if d["reset_threshold"] > min(d["limit"], ec["max_reset_threshold"]):
            raise fail("pboc.ec.defaults.reset_threshold", "exceeds the limit or its maximum")
        _check_iad(pboc["iad"], pboc["session_key"], fail)
    elif "mag_stripe" in data:
        raise fail("mag_stripe", "a magnetic stripe (ISO/IEC 7813 tracks) needs a 'pboc' section")
    masters = {k["master"] for k in ssse["keys"]} | {data["transport_kek"]}
    if pboc is not None:
        masters |= {pboc["keys"][k] for k in ("ac", "smi", "smc")}
    if len(masters) > HEADER_MAX:
        raise fail("ssse.keys", f"more than {HEADER_MAX} distinct master keys")
    values = sources | set(TEMPLATE_VALUES)
    for i, ff in enumerate(data.get("card_face", [])):
        if ff["src"] not in values:
            raise fail(f"card_face[{i}].src", f"unknown source {ff['src']!r}")


def _check_iad(iad: bytes, session_key: str, fail: Any) -> None:
    """9F10 in PBOC's layout must be whole (else every card would refuse it at STORE DATA),
    and ``session_key`` must be what the card picks by the 9F10 CVN (layouts.pboc_ac)."""
    from cardperso.errors import DecodeError
    from cardperso.layouts import pboc_ac

    if iad[:1] == b"\x07":
        try:
            parsed = pboc_ac.IAD.decode(iad)
        except DecodeError as exc:
            raise fail("pboc.iad", f"not PBOC's 9F10 layout: {exc.reason}") from None
        if parsed.algorithm != pboc_ac.ALGORITHM_3DES:
            raise fail("pboc.iad", "9F10 algorithm must be 01 (3DES; SM4 cryptograms are not made)")
    if pboc_ac.session_method(iad) != session_key:
        raise fail(
            "pboc.session_key",
            f"{session_key} does not match the 9F10 CVN (PBOC's CVN 01 or 17 means pboc)",
        )


def _check_const(r: dict[str, Any], fail: Any, path: str) -> None:
    value = str(r["const"])
    fmt, length = r["fmt"], r["len"]
    if fmt in ("cn", "n"):
        if not value.isdigit() or len(value) > 2 * length:
            raise fail(path, f"needs up to {2 * length} digits for {fmt}{length}")
    elif fmt == "b":
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise fail(path, "needs hex bytes for format b") from None
        if len(raw) != length:
            raise fail(path, f"needs exactly {length} bytes")
    else:
        try:
            raw = value.encode("ascii" if fmt == "an" else "gbk")
        except UnicodeEncodeError:
            raise fail(path, f"cannot be encoded as {fmt}") from None
        if len(raw) > length:
            raise fail(path, f"is longer than {length} bytes")


def _oda(o: dict[str, Any] | None) -> OdaSpec | None:
    if o is None:
        return None
    values: dict[str, Any] = dict(o)
    for k in ("issuer_dgi", "cert_dgi", "ssad_dgi"):
        if k in values:
            values[k] = int(values[k], 16)
    if "ca_index" in values:
        values["ca_index"] = values["ca_index"][0]
    return OdaSpec(**values)


def _build(data: dict[str, Any], digest: bytes, source: str) -> Profile:
    ss = data["ssse"]
    cid = ss["card_id"]
    ssse = SsseSpec(
        df_name=ss["df_name"],
        algorithm=ss["algorithm"],
        algorithm_indicator=ss["algorithm_indicator"],
        card_id=CardIdSpec(cid["prefix"], cid["serial_placeholder"], cid["tail"]),
        files=tuple(
            FileSpec(
                f["name"],
                f["sfi"],
                tuple(
                    RecordSpec(
                        r["rec"],
                        r["tag"],
                        r["len"],
                        r["fmt"],
                        r.get("src"),
                        None if "const" not in r else str(r["const"]),
                    )
                    for r in f["records"]
                ),
            )
            for f in ss["files"]
        ),
        key_factor=ss["key_factor"],
        keys=tuple(SsseKeySpec(k["id"], k["name"], k["master"], k["version"]) for k in ss["keys"]),
        internal_auth_p2=ss["internal_auth_p2"],
    )
    pboc = None
    if "pboc" in data:
        p = data["pboc"]
        ec = p["ec"]
        d = ec["defaults"]
        pboc = PbocSpec(
            aid=p["aid"],
            imk_ac=p["keys"]["ac"],
            imk_smi=p["keys"]["smi"],
            imk_smc=p["keys"]["smc"],
            derivation=p["keys"]["derivation"],
            service_code=p["service_code"],
            track2_discretionary=p["track2_discretionary"],
            latin_name_default=p["latin_name_default"],
            extended_name_gbk=p["extended_name_gbk"],
            id_type=p["id_type"],
            app_version=p["app_version"],
            iad=p["iad"],
            session_key=p["session_key"],
            oda=_oda(p.get("oda")),
            ec=EcSpec(
                currency=ec["currency"],
                auth_code=ec["auth_code"],
                max_balance_limit=ec["max_balance_limit"],
                max_single_limit=ec["max_single_limit"],
                max_reset_threshold=ec["max_reset_threshold"],
                default_balance=d["balance"],
                default_limit=d["limit"],
                default_single_limit=d["single_limit"],
                default_reset_threshold=d["reset_threshold"],
            ),
            constant_dgis=tuple(
                ConstantDgi(
                    int(c["dgi"], 16),
                    int(c["template"], 16) if "template" in c else None,
                    tuple(TlvItem(int(t["tag"], 16), t["value"]) for t in c["tlv"]),
                )
                for c in p["constant_dgis"]
            ),
        )
    gp = data["gp"]
    sd = data["store_data"]
    pin = data["pin"]
    ms = data.get("mag_stripe")
    return Profile(
        name=data["name"],
        title=data["title"],
        generation=data["generation"],
        photo=data["photo"],
        pin=PinSpec(pin["source"], pin["length"], pin["try_limit"]),
        ssse=ssse,
        pboc=pboc,
        gp=GpSpec(
            gp["kmc"],
            gp["diversification"],
            gp["scp"],
            gp["i"],
            gp["kvn"],
            gp.get("transport_kmc", "gp-transport-aes" if gp["scp"] == "03" else "gp-transport"),
            gp.get("transport_diversification", "none"),
        ),
        store_data=StoreDataSpec(
            tuple(int(x, 16) for x in sd["encrypted_dgis"]),
            sd["pad_encrypted"],
            sd["p1_dgi_format"],
            sd.get("order", "prepared"),
        ),
        transport_kek=data["transport_kek"],
        card_face=tuple(FaceField(f["name"], f["src"]) for f in data["card_face"]),
        mag_stripe=None if ms is None else MagStripeSpec(ms["track1"], ms["track2"]),
        digest=digest,
        source=source,
        production=bool(data.get("production", False)),
        photo_spec=data.get("photo_spec", "card"),
        pki=None if "pki" not in data else PkiSpec(**data["pki"]),
    )


def parse_profile(text: str, filename: str = "<profile>") -> Profile:
    """Parse and check profile YAML *text*; errors name *filename*, the line and the field."""
    root = s.load_yaml(text, filename)
    data = s.check(SCHEMA, root, filename)
    _semantic(data, root, filename)
    canonical = json.dumps(_canonical(data), sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return _build(data, digest, filename)


def profile_dirs() -> list[Path]:
    """Directories searched for profiles by name."""
    dirs: list[Path] = []
    env = os.environ.get("CARDPERSO_PROFILES")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "profiles"
        if (parent / "pyproject.toml").exists() and cand.is_dir():
            dirs.append(cand)
            break
    dirs.append(Path.cwd() / "profiles")
    return dirs


def list_profiles() -> list[str]:
    names: set[str] = set()
    for d in profile_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def _read_profile(path: Path) -> str:
    """The text of a profile file: a regular file (not a FIFO or a device) of at most
    :data:`~cardperso.profiles.schema.MAX_BYTES` bytes of UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ProfileError(f"{path}: a profile must be a regular file")
            data = fh.read(s.MAX_BYTES + 1)
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read profile: {exc.strerror}") from None
    if len(data) > s.MAX_BYTES:
        raise ProfileError(f"{path}: the profile is larger than {s.MAX_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: profile is not valid UTF-8") from None


def load_profile(name_or_path: str | os.PathLike[str]) -> Profile:
    """Load a profile by name (``ssc3-pboc``) or by path to a YAML file."""
    text_name = os.fspath(name_or_path)
    path = Path(text_name)
    if not (text_name.endswith((".yaml", ".yml")) or os.sep in text_name):
        for d in profile_dirs():
            cand = d / f"{text_name}.yaml"
            if cand.is_file():
                path = cand
                break
        else:
            known = ", ".join(list_profiles()) or "none found"
            raise ProfileError(f"no profile named {text_name!r} (known: {known})")
    text = _read_profile(path)
    profile = parse_profile(text, str(path))
    if path.stem != profile.name and path.suffix in (".yaml", ".yml"):
        raise ProfileError(f"{path}: field 'name': {profile.name!r} differs from the file name")
    return profile
