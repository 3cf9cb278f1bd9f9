"""Synthetic photos that meet the social-security card photo specification (issue 15), for
the registry's tests (the registry checks every photo against it)."""

from __future__ import annotations

import io
import random


def spec_photo(rng: random.Random) -> bytes:
    """A synthetic portrait that meets the card photo specification (358x441 JPEG, 24-bit,
    quality 70, about 18 KiB: a little noise keeps it above the 9 KiB floor)."""
    from PIL import Image, ImageDraw

    w, h = 358, 441
    img = Image.new("RGB", (w, h), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    draw.ellipse((90, 50, 268, 270), fill=(rng.randint(200, 240), rng.randint(160, 200), 150))
    draw.rectangle((36, 290, 322, h), fill=(rng.randint(0, 120), 60, rng.randint(0, 160)))
    noise = Image.frombytes("L", (w, h), rng.randbytes(w * h)).convert("RGB")
    out = io.BytesIO()
    Image.blend(img, noise, 0.08).save(out, "JPEG", quality=70, dpi=(350, 350))
    return out.getvalue()
