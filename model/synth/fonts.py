"""The fonts typeset images are made with: DejaVu's, where the system has them, else Pillow's own."""

from __future__ import annotations

from pathlib import Path

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype"))
FONT_NAMES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansCondensed-Oblique.ttf",
    "DejaVuSans-ExtraLight.ttf",
)


def fonts() -> list[Path | None]:
    found: list[Path | None] = [d / n for n in FONT_NAMES for d in FONT_DIRS if (d / n).is_file()]
    return found or [None]  # None: Pillow's bundled font
