"""What the mutation run of 4 December 2026 (late evening) over cardperso.layouts found
unasserted (issue 18): the ODA key-certificate layouts of layouts/emv_blocks.py are built by a
function at import, so a fault in it was never switched on while a test ran (docs/testing.md,
group 3); building them again here checks the builder against the published Amex vectors. And
the SSSE EF06 record never shows its personal data in ``repr``."""

from __future__ import annotations

from typing import Any

import pytest

from cardperso.layouts import emv_blocks, ssse
from cardperso.layouts.base import LAYOUTS, Layout


@pytest.mark.parametrize(
    ("layout", "fmt", "id_field", "id_len"),
    [
        (emv_blocks.ISSUER_CERT, 0x02, "issuer_id", 4),
        (emv_blocks.ICC_CERT, 0x04, "pan", 10),
    ],
    ids=["issuer", "icc"],
)
def test_key_certificate_layouts_built_again(
    layout: Layout[Any], fmt: int, id_field: str, id_len: int
) -> None:
    name = layout.name + ".built-again"
    again = emv_blocks._key_cert_layout(
        name, layout.spec, fmt, layout.model, id_field, id_len, layout.vectors
    )
    try:
        assert layout.vectors
        for model, raw in layout.vectors:
            assert again.encode(model) == raw
            assert again.decode(raw) == model
            container = again.struct.parse(raw)
            assert container[id_field] == getattr(model, id_field)
            assert container["hash_algorithm"] == model.hash_algorithm == 1
    finally:
        LAYOUTS.pop(name, None)


def test_ef06_repr_hides_personal_data() -> None:
    for layout in (ssse.EF06, ssse.EF06_V1):
        assert layout.vectors
        for model, _raw in layout.vectors:
            assert repr(model) == "Ef06(<personal data>)"
