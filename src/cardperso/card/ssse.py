"""The SSSE (social-security) application of the virtual card."""

from __future__ import annotations

from cardperso.card.applet import Applet


class SsseApplet(Applet):
    kind = "ssse"
