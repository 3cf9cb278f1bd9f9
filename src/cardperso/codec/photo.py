"""The social-security card photo specification, checked on a photo's bytes (pure: no image
library, no file access).

Source: 《中华人民共和国社会保障卡制证用数字相片技术要求》 (the card photo technical requirements of
the Ministry of Human Resources and Social Security), as published by issuing offices, e.g.
https://rsc.sdws.edu.cn/2019/0416/c253a1938/page.htm and the 2014 Wuhan notice quoting it in
full; summarised in /work/shared/reference/native-cos.md ("Photo"):

* 358 pixels wide × 441 pixels high, 350 dpi;
* 24-bit RGB true colour;
* JPEG, compression quality factor 70; "a photo file is generally 14 K-40 K" (local offices
  ask 9-20 K, so the accepted window here is 9-40 KiB);
* white background, no border, face 179-255 px wide … (composition rules a person checks: not
  checked here).

:func:`check_photo` reads the JPEG markers (SOI, the frame header SOFn with the precision, size
and number of components) and returns what it found, or raises
:class:`~cardperso.errors.DataError` (field ``photo``) whose reason starts with the rule that
failed: ``format``, ``pixel size``, ``colour`` or ``file size``. The parser walks at most the
bytes it is given, one segment at a time, so hostile input costs at most one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cardperso.errors import DataError


@dataclass(frozen=True, slots=True)
class PhotoSpec:
    width: int = 358
    height: int = 441
    components: int = 3  # 24-bit colour: three 8-bit components (YCbCr in a JPEG)
    precision: int = 8
    min_bytes: int = 9 * 1024
    max_bytes: int = 40 * 1024


#: The social-security card photo (the module docstring).
CARD_PHOTO: Final = PhotoSpec()


@dataclass(frozen=True, slots=True)
class PhotoInfo:
    width: int
    height: int
    components: int
    precision: int
    size: int


#: Start-of-frame markers (ITU T.81 table B.1): C0-C3, C5-C7, C9-CB, CD-CF.
_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers without a length: TEM, RST0-7 (SOI and EOI are handled apart).
_BARE: Final = frozenset({0x01, *range(0xD0, 0xD8)})


def _fail(rule: str, reason: str) -> DataError:
    return DataError(f"{rule}: {reason}", field="photo")


def _what(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "a PNG image"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF image"
    if data.startswith(b"BM"):
        return "a BMP image"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "a TIFF image"
    return "not an image this check knows"


def frame(data: bytes) -> PhotoInfo:
    """The frame header of a JPEG (:class:`DataError` ``format: …`` when there is none)."""
    if not data.startswith(b"\xff\xd8"):
        raise _fail("format", f"is {_what(data)}, not a JPEG")
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise _fail("format", f"the JPEG is damaged (no marker at byte {i})")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _BARE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            break
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2 or i + 2 + length > n:
            raise _fail("format", "the JPEG is damaged (a segment runs past the end)")
        if marker in _SOF:
            if length < 8:
                raise _fail("format", "the JPEG is damaged (short frame header)")
            seg = data[i + 4 : i + 2 + length]
            return PhotoInfo(
                width=int.from_bytes(seg[3:5], "big"),
                height=int.from_bytes(seg[1:3], "big"),
                components=seg[5],
                precision=seg[0],
                size=n,
            )
        i += 2 + length
    raise _fail("format", "the JPEG has no frame header (truncated?)")


def check_photo(data: bytes, spec: PhotoSpec = CARD_PHOTO) -> PhotoInfo:
    """Check ``data`` against ``spec``: format, pixel size, colour, file size (in that order)."""
    return check_frame(frame(data), spec)


def check_frame(info: PhotoInfo, spec: PhotoSpec = CARD_PHOTO) -> PhotoInfo:
    """The rules of :func:`check_photo` after the format, on a frame already read (pixel size,
    colour, file size, in that order)."""
    if (info.width, info.height) != (spec.width, spec.height):
        raise _fail(
            "pixel size",
            f"is {info.width}x{info.height} px, the specification asks {spec.width}x{spec.height}",
        )
    if info.components != spec.components or info.precision != spec.precision:
        kind = {1: "grayscale", 4: "CMYK"}.get(info.components, f"{info.components} components")
        if info.components == spec.components:
            kind = f"{info.precision}-bit samples"
        raise _fail("colour", f"is {kind}, the specification asks 24-bit colour (RGB)")
    if not spec.min_bytes <= info.size <= spec.max_bytes:
        raise _fail(
            "file size",
            f"is {info.size:,} bytes, the specification asks "
            f"{spec.min_bytes // 1024}-{spec.max_bytes // 1024} KiB",
        )
    return info
