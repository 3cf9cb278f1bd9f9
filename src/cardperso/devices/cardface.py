"""Card faces: render the printed side of a card with Pillow and split it into printer panels.

The face is drawn at 300 dpi on a CR-80 card (1016 x 648 dots, landscape) from a
:class:`FaceLayout` (positions in dots, from the profile) and the card's face fields (photo,
name in Chinese, social security number, card number, issue date, bank name). It is then
separated into the panels of a YMCKO ribbon:

* ``y``, ``m``, ``c``: the photo and background in colour, 256 levels per dot;
* ``k``: text in resin black, 1 bit per dot;
* ``o``: the protective overlay, 1 bit per dot, with a window left open over the chip.

Panels are sent in the printer's orientation: 648 dots across the head by 1016 lines
(the landscape face rotated by 90 degrees). :func:`compose` turns downloaded panels back into
an RGB picture, which the printer simulator saves as PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from cardperso.devices.evolis import PANEL_HEIGHT, PANEL_WIDTH
from cardperso.errors import DataError

CARD_W, CARD_H = PANEL_HEIGHT, PANEL_WIDTH  # landscape face: 1016 x 648 dots
COLOUR_LEVELS = 256
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)


@dataclass(frozen=True, slots=True)
class TextItem:
    """One text field on the face: which face field, where, how big, with which label."""

    field: str
    x: int
    y: int
    size: int = 34
    label: str = ""


@dataclass(frozen=True, slots=True)
class FaceLayout:
    """Positions in dots at 300 dpi on the landscape face."""

    photo: tuple[int, int, int, int] = (790, 150, 190, 250)  # x, y, width, height
    chip_window: tuple[int, int, int, int] = (70, 240, 150, 120)  # overlay left open here
    title: str = "中华人民共和国社会保障卡"
    texts: tuple[TextItem, ...] = field(
        default_factory=lambda: (
            TextItem("name", 250, 160, 40, "姓名 "),
            TextItem("ssn", 250, 240, 30, "社会保障号码 "),
            TextItem("card_no", 250, 300, 30, "社会保障卡号 "),
            TextItem("issue_date", 250, 360, 30, "发卡日期 "),
            TextItem("bank_name", 250, 560, 30, ""),
        )
    )


def find_font() -> str:
    """Path of a CJK font, or a :class:`DataError` saying which Debian package to install."""
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    raise DataError(
        "no CJK font found for card faces; install Debian's fonts-wqy-microhei", field="font"
    )


@dataclass(frozen=True, slots=True)
class Face:
    """A rendered face: the colour layer, the black text layer and the overlay mask."""

    colour: Image.Image  # RGB, 1016 x 648
    black: Image.Image  # mode "1", 1 = ink
    overlay: Image.Image  # mode "1", 1 = varnish


def render(
    fields: dict[str, str], photo_jpeg: bytes | None, layout: FaceLayout | None = None
) -> Face:
    """Draw a face. ``fields`` are display strings (already masked where the profile says)."""
    layout = layout or FaceLayout()
    font_path = find_font()
    colour = Image.new("RGB", (CARD_W, CARD_H), (232, 240, 250))
    draw_c = ImageDraw.Draw(colour)
    draw_c.rectangle((0, 0, CARD_W, 110), fill=(30, 80, 160))
    if photo_jpeg:
        try:
            photo = Image.open(io.BytesIO(photo_jpeg)).convert("RGB")
        except Exception as exc:  # Pillow raises many types for bad images
            raise DataError(
                f"photo cannot be decoded ({type(exc).__name__})", field="photo"
            ) from None
        x, y, w, h = layout.photo
        colour.paste(photo.resize((w, h)), (x, y))  # photo on the right, chip on the left
    black = Image.new("1", (CARD_W, CARD_H), 0)
    draw_k = ImageDraw.Draw(black)
    draw_k.text((60, 30), layout.title, fill=255, font=ImageFont.truetype(font_path, 46))
    for item in layout.texts:
        value = fields.get(item.field, "")
        if value:
            draw_k.text(
                (item.x, item.y),
                item.label + value,
                fill=255,
                font=ImageFont.truetype(font_path, item.size),
            )
    overlay = Image.new("1", (CARD_W, CARD_H), 255)
    cx, cy, cw, ch = layout.chip_window
    ImageDraw.Draw(overlay).rectangle((cx, cy, cx + cw, cy + ch), fill=0)
    return Face(colour, black, overlay)


def _to_printer(img: Image.Image) -> Image.Image:
    """Landscape face → printer orientation (648 across the head, 1016 lines)."""
    return img.transpose(Image.Transpose.ROTATE_90)


def _from_printer(img: Image.Image) -> Image.Image:
    return img.transpose(Image.Transpose.ROTATE_270)


def _unpack(data: bytes, levels: int, size: tuple[int, int]) -> Image.Image:
    """A downloaded panel as an 8-bit image (levels 2: 1 bit per dot; 256: 1 byte per dot)."""
    if levels == 2:
        return Image.frombytes("1", size, data).convert("L")
    if levels == 256:
        return Image.frombytes("L", size, data[: size[0] * size[1]])
    raise DataError(f"panels with {levels} levels are not rendered", field="panel")


def panels(face: Face) -> dict[str, tuple[int, bytes]]:
    """Printer panels ``{panel: (levels, payload)}`` for a YMCKO ribbon."""
    rgb = _to_printer(face.colour)
    r, g, b = rgb.split()
    out: dict[str, tuple[int, bytes]] = {}
    for name, channel in (("y", b), ("m", g), ("c", r)):  # subtractive: Y absorbs blue, ...
        inverted = channel.point(lambda v: 255 - v)
        out[name] = (COLOUR_LEVELS, inverted.tobytes())
    out["k"] = (2, _to_printer(face.black).tobytes())
    out["o"] = (2, _to_printer(face.overlay).tobytes())
    return out


def compose(downloaded: dict[str, tuple[int, bytes]]) -> Image.Image:
    """What the printer would put on the card, from downloaded panels, as a landscape RGB image."""
    size = (PANEL_WIDTH, PANEL_HEIGHT)
    layers = {}
    for name in ("c", "m", "y"):
        if name in downloaded:
            levels, data = downloaded[name]
            layers[name] = _unpack(data, levels, size).point(lambda v: 255 - v)
        else:
            layers[name] = Image.new("L", size, 255)
    img = Image.merge("RGB", (layers["c"], layers["m"], layers["y"]))
    if "k" in downloaded:
        levels, data = downloaded["k"]
        mask = _unpack(data, levels, size).point(lambda v: 255 if v >= 128 else 0).convert("1")
        img.paste((0, 0, 0), (0, 0), mask)
    return _from_printer(img)


def to_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
