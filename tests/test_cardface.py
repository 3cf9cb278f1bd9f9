"""Card faces: rendering with a CJK font, panel separation and recomposition."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from cardperso.devices.cardface import CARD_H, CARD_W, FaceLayout, compose, panels, render, to_png
from cardperso.devices.evolis import panel_bytes
from cardperso.errors import DataError


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (120, 160), colour).save(buf, format="JPEG")
    return buf.getvalue()


FIELDS = {
    "name": "欧阳娜娜",
    "ssn": "360426********0071",
    "card_no": "X00000019",
    "issue_date": "2026-11-22",
}


def test_panels_have_printer_geometry() -> None:
    out = panels(render(FIELDS, _jpeg((200, 30, 30))))
    assert set(out) == {"y", "m", "c", "k", "o"}
    assert out["k"][0] == 2 and len(out["k"][1]) == panel_bytes(2)
    assert out["o"][0] == 2 and len(out["o"][1]) == panel_bytes(2)
    assert out["y"][0] == 256 and len(out["y"][1]) == panel_bytes(256)


def test_compose_reproduces_photo_text_and_overlay_window() -> None:
    layout = FaceLayout()
    face = render(FIELDS, _jpeg((200, 30, 30)), layout)
    image = compose(panels(face))
    assert image.size == (CARD_W, CARD_H)
    x, y, w, h = layout.photo
    r, g, b = image.getpixel((x + w // 2, y + h // 2))  # type: ignore[misc]
    assert r > 150 and g < 80 and b < 80, "photo colour survives the YMC separation"
    # the name (Chinese) is drawn in black: some pixels in the name area are black
    name_box = image.crop((250, 160, 700, 210))
    assert (0, 0, 0) in {p for _, p in name_box.getcolors(1 << 16) or []}
    # the overlay leaves the chip window open
    cx, cy, cw, ch = layout.chip_window
    assert face.overlay.getpixel((cx + cw // 2, cy + ch // 2)) == 0
    assert face.overlay.getpixel((5, CARD_H - 5)) == 255
    assert to_png(image).startswith(b"\x89PNG")


def test_undecodable_photo_is_a_data_error_naming_the_field() -> None:
    with pytest.raises(DataError) as info:
        render(FIELDS, b"not a jpeg")
    assert info.value.field == "photo"
