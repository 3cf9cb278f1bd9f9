"""The columnar chunk path (issue 14) against the per-record references it must agree with.

* :mod:`cardperso.codec.columns`: :func:`assemble` against joining each record's pieces,
  :func:`bcd` against the one-value encoders of :mod:`cardperso.codec.fields`, :func:`text_var`
  against :meth:`str.encode`;
* :class:`cardperso.prep.cards.ColumnChecker` against :meth:`Validator.check` on hypothesis
  records (the masks never accept what the rules refuse; the same field and reason);
* :class:`cardperso.prep.dedup.FingerprintSet` against a ``dict`` (first occurrence wins);
* the layouts' record construct as the template of the SSSE records;
* the PBOC stage of extra DGIs (the hook offline data authentication plugs into).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardperso.codec import fields
from cardperso.codec.columns import Cut, Var, assemble, bcd, text_var, var_of
from cardperso.codec.dgi import parse_dgis
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.layouts import persofile as pf
from cardperso.layouts.ssse import EF05, record_template
from cardperso.prep.build import ChunkBuilder
from cardperso.prep.cards import ColumnChecker, cards_of
from cardperso.prep.dedup import FingerprintSet
from cardperso.prep.keys import ChunkKeys
from cardperso.prep.synth import make_photo, records
from cardperso.prep.validate import Reject, Validator
from cardperso.profiles.loader import load_profile

PROFILE = load_profile("ssc3-pboc")

# -- codec.columns ---------------------------------------------------------------------------

_piece = st.one_of(
    st.tuples(st.just("const"), st.binary(max_size=6)),
    st.tuples(st.just("fixed"), st.integers(0, 5)),
    st.tuples(st.just("var"), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.integers(0, 7)),
)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 6), pieces=st.lists(_piece, max_size=8), seed=st.integers(0, 2**16))
def test_assemble_equals_joining_each_records_pieces(n: int, pieces: list[Any], seed: int) -> None:
    rng = random.Random(seed)
    segs: list[Any] = []
    per: list[list[bytes]] = [[] for _ in range(n)]
    for kind, arg in pieces:
        if kind == "const":
            segs.append(arg)
            for r in per:
                r.append(arg)
        elif kind == "fixed":
            mat = np.array([[rng.randrange(256) for _ in range(arg)] for _ in range(n)], np.uint8)
            segs.append(mat.reshape(n, arg))
            for i, r in enumerate(per):
                r.append(mat.reshape(n, arg)[i].tobytes())
        else:
            vals = [
                bytes(rng.randrange(256) for _ in range(rng.randrange(arg + 1))) for _ in range(n)
            ]
            var = var_of(vals)
            if kind == "var":
                segs.append(var)
                for r, v in zip(per, vals):
                    r.append(v)
            else:
                keep = np.array([rng.randrange(len(v) + 1) for v in vals], np.int64)
                segs.append(Cut(var, keep))
                for r, v, k in zip(per, vals, keep.tolist()):
                    r.append(v[:k])
    got = assemble(n, segs)
    assert got.items() == [b"".join(r) for r in per]


@given(values=st.lists(st.text(alphabet="0123456789", min_size=1, max_size=12), min_size=1))
def test_bcd_equals_the_one_value_encoders(values: list[str]) -> None:
    width = max(len(v) for v in values)
    nbytes = (width + 1) // 2
    for v in values:  # one width per matrix: pad on the side the format pads
        rows = np.frombuffer(v.ljust(width, "0").encode(), np.uint8).reshape(1, -1)
        if len(v) == width:
            assert bcd(rows, nbytes, "F")[0].tobytes() == fields.encode_cn(v, nbytes, "f")
            assert bcd(rows, nbytes, "0")[0].tobytes() == fields.encode_n(v, nbytes, "f")


@given(values=st.lists(st.text(alphabet="ab中文\n𠀀 ", max_size=6), max_size=8))
def test_text_var_equals_str_encode(values: list[str]) -> None:
    for enc in ("utf-8", "gb18030"):
        assert text_var(values, enc).items() == [v.encode(enc) for v in values]
    try:
        want = [v.encode("gbk") for v in values]
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            text_var(values, "gbk")
    else:
        assert text_var(values, "gbk").items() == want


# -- the masks against the validator ---------------------------------------------------------

_GOOD = list(records(40, seed=11, photos=1))
_FIELD_VALUES = st.one_of(
    st.sampled_from(["", " ", "0", "1", "2", "X", "中", "😀", '"', "abc", "99", "00", "A1"]),
    st.text(alphabet="0123456789X ", max_size=20),
    st.text(max_size=6),
)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cols")
    (d / "photos").mkdir()
    (d / "photos" / "p0000.jpg").write_bytes(make_photo(random.Random(1)))
    return d


def _mutate(
    rec: dict[str, str], changes: dict[str, str], digit: tuple[str, int, str]
) -> dict[str, str]:
    out = dict(rec) | changes
    name, pos, ch = digit
    if out.get(name):
        v = out[name]
        p = pos % len(v)
        out[name] = v[:p] + ch + v[p + 1 :]
    return out


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    picks=st.lists(
        st.tuples(
            st.integers(0, len(_GOOD) - 1),
            st.dictionaries(st.sampled_from(sorted(_GOOD[0])), _FIELD_VALUES, max_size=2),
            st.tuples(
                st.sampled_from(sorted(_GOOD[0])),
                st.integers(0, 30),
                st.sampled_from("0123456789AXZ"),
            ),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_column_checks_agree_with_the_validator(photo_dir: Path, picks: list[Any]) -> None:
    """Every record: prepared by the columns exactly when the validator accepts it, and when
    refused, the validator's own field and reason."""
    recs = [_mutate(_GOOD[i], changes, digit) for i, changes, digit in picks]
    validator = Validator(PROFILE, photo_dir)
    names = sorted({k for r in recs for k in r})
    cols = {f: [r.get(f, "") for r in recs] for f in names}
    lines = list(range(2, 2 + len(recs)))
    cards, bad = ColumnChecker(validator).check(cols, lines, lambda i: dict(recs[i]))
    want_good, want_bad = [], []
    for line, rec in zip(lines, recs):
        try:
            Validator(PROFILE, photo_dir).check(dict(rec))
        except Reject as rej:
            want_bad.append((line, rej.field, rej.reason))
        else:
            want_good.append(line)
    assert cards.lines.tolist() == want_good
    assert [(line, f, r) for line, f, r, _m, _e in bad] == want_bad


# -- duplicates ------------------------------------------------------------------------------


@given(
    capacity=st.sampled_from([16, 64, 4096]),
    batches=st.lists(
        st.tuples(
            st.lists(
                st.one_of(st.just(0), st.integers(1, 40), st.integers(1, 2**64 - 1)), max_size=40
            ),
            st.sets(st.integers(0, 39), max_size=4),
        ),
        max_size=12,
    ),
)
def test_fingerprint_set_equals_a_dict(capacity: int, batches: list[Any]) -> None:
    """Chunks of fingerprints added at once: the duplicates and their first lines are those of
    adding them one by one to a dict (first occurrence wins, skipped indexes ignored)."""
    s = FingerprintSet(capacity)
    model: dict[int, int] = {}
    line = 1
    for fps, skip in batches:
        lines = list(range(line, line + len(fps)))
        line += len(fps)
        got = s.add_many(fps, lines, skip)
        want = {}
        for i, (fp, ln) in enumerate(zip(fps, lines)):
            if fp and i not in skip:
                if fp in model:
                    want[i] = model[fp]
                else:
                    model[fp] = ln
        assert got == want
    assert s.count == len(model)


# -- templates and the extra-DGI stage --------------------------------------------------------


def test_ssse_record_templates_are_the_layouts_records() -> None:
    """The records prep fills are the ones the EF05 layout builds (its own vector)."""
    _model, raw = EF05.vectors[0]
    rows = EF05.records
    pos = 0
    for row in rows:
        tlv = raw[pos : pos + 2 + row.length]
        assert record_template(row.tag, row.length, "b")[:2] == tlv[:2]
        assert record_template(row.tag, row.length, "b", tlv[2:]) == tlv
        pos += 2 + row.length


def test_extra_pboc_dgis_are_appended_per_card(
    photo_dir: Path, sample_keystore: SoftwareKeyStore
) -> None:
    """The per-profile stage of extra DGIs (offline data authentication plugs in here) sees
    each card's PBOC DGIs and its output ends that card's PBOC application."""
    recs = [dict(r) for r in _GOOD[:3]]
    cards = cards_of(Validator(PROFILE, photo_dir), recs)
    keys = ChunkKeys(sample_keystore, PROFILE, b"s" * 32).derive(cards)
    builder = ChunkBuilder(PROFILE)
    plain = builder.build(cards, keys)
    seen: list[bytes] = []

    def stage(c: Any, dgis: Var) -> Var:
        seen.extend(dgis.items())
        return var_of([bytes.fromhex("8201") + bytes((i + 1,)) + bytes(i + 1) for i in range(c.n)])

    builder.extra_pboc = stage
    extra = builder.build(cards, keys)
    for i in range(cards.n):
        before = pf.PERSO_RECORD_CONTENT.decode(plain.content.item(i)[: plain.sizes[i]])
        after = pf.PERSO_RECORD_CONTENT.decode(extra.content.item(i)[: extra.sizes[i]])
        assert seen[i] == before.apps[1].dgis
        assert after.apps[1].dgis == before.apps[1].dgis + bytes.fromhex("8201") + bytes(
            (i + 1,)
        ) + bytes(i + 1)
        assert parse_dgis(after.apps[1].dgis)[-1] == (0x8201, bytes(i + 1))
        assert after.apps[0] == before.apps[0] and after.face == before.face
