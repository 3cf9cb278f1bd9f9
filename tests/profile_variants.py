"""The reference profile (profiles/ssc3-pboc.yaml) without its offline data authentication, for
tests about something else that prepare batches too large for an ICC key pool made on the spot
(the SIGTERM/SIGKILL runs of 20,000 lines) or that compare files of separate runs (each run takes
fresh ICC keys). The variant claims no ODA in its AIP and names none of the chain's records."""

from __future__ import annotations

import re
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1] / "profiles" / "ssc3-pboc.yaml"


def without_oda(text: str) -> str:
    """``text`` (the reference profile's YAML) without ``pboc.oda``, 9F4A and the SFI 2 records
    in the AFL, its AIP claiming no SDA, DDA or CDA (``7D00`` -> ``1C00``)."""
    out, n = re.subn(r"\n  oda:\n(?:    .*\n)*", "\n", text)
    assert n == 1, "the reference profile's pboc.oda section moved"
    out = out.replace("value: 7D00}", "value: 1C00}")
    out = out.replace('"08010101100103001801020220010300"', '"080101001801020020010300"')
    out = re.sub(r"\n        - \{tag: 9F4A, value: \"82\"\}[^\n]*", "", out)
    assert "value: 7D00" not in out and "tag: 9F4A" not in out
    return out


def write_without_oda(path: Path) -> Path:
    """The variant written to ``path`` (same profile name), returned."""
    path.write_text(without_oda(REFERENCE.read_text(encoding="utf-8")), encoding="utf-8")
    return path
