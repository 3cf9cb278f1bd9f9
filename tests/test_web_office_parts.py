"""Parts of the centre's office that need no server: the charts drawn (a bar a day, the
target line, bars to scale, every text escaped), the name a download is given, and a registry
rule behind the audit queue (an applicant who said no has not signed). The pages themselves:
tests/test_web_office.py."""

from __future__ import annotations

import re

from cardperso.web import charts, office


def test_the_charts_draw_what_they_are_given_and_escape_every_text() -> None:
    svg = str(charts.histogram([0, 3, 3, 7, 31, 31, 31], 30, "lead <b>times</b>"))
    counts = {int(d): int(n) for d, n in re.findall(r'data-day="(\d+)" data-count="(\d+)"', svg)}
    assert counts[3] == 2 and counts[31] == 3 and counts[1] == 0 and sum(counts.values()) == 7
    assert sorted(counts) == list(range(32))  # one bar a day, up to the longest
    late = re.findall(r'data-day="(\d+)" data-count="\d+" [^>]*fill="#b00020"', svg)
    assert [int(d) for d in late] == [31]  # past the target: red
    x = {
        int(d): float(v)
        for d, v in re.findall(r'data-day="(\d+)" data-count="\d+" x="([\d.]+)"', svg)
    }
    line = float(re.search(r'class="target" data-target="30" x1="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
    assert x[30] < line < x[31]  # the target line between the target's day and the next
    assert "<b>" not in svg and "lead &lt;b&gt;times&lt;/b&gt;" in svg
    empty = str(charts.histogram([], 5, "none"))
    assert sum(int(n) for n in re.findall(r'data-count="(\d+)"', empty)) == 0
    bars = str(charts.bars([('"><script>x</script>', 2, 1), ("SP02", 0, 4)], "per point"))
    assert "<script>" not in bars and "&lt;script&gt;" in bars
    assert (
        'data-group="SP02" data-at-risk="4"' in bars and 'data-group="SP02" data-late="0"' in bars
    )
    heights = dict(
        re.findall(
            r'data-at-risk="(\d)" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', bars
        )
    )
    assert float(heights["4"]) == 4 * float(heights["1"]) > 0  # bars to scale


def test_an_applicant_who_said_no_has_not_signed() -> None:
    """An application imported with applicant_confirmed "no" waits at the audit for the
    applicant's signature (it used to be stored as "no" and count as signed)."""
    from cardperso.registry.centre import Lists, check_centre, missing_confirmations

    for no in ("no", "否", "0", "N"):
        got = check_centre({"staff_confirmed": "王工号0012", "applicant_confirmed": no},
                           Lists({}, {}, {}))  # fmt: skip
        assert got["applicant_confirmed"] == ""
        assert missing_confirmations(got["staff_confirmed"], got["applicant_confirmed"]) == [
            "applicant"
        ]
    assert check_centre({"applicant_confirmed": "是"}, Lists({}, {}, {})) == {
        "applicant_confirmed": "yes"
    }


def test_a_download_name_cannot_break_its_header() -> None:
    """A batch number is whatever `registry export-batch --batch` was given: the file name in
    Content-Disposition keeps letters, digits, '.', '_' and '-' only."""
    got = office._download('return-B"1\r\nSet-Cookie: x=1;.csv', b"")
    assert got.headers["content-disposition"] == (
        'attachment; filename="return-B_1__Set-Cookie__x_1_.csv"'
    )
