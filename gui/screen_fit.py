"""Size and place a top-level window so that it fits the screen it opens on."""
from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget


def fit_window(window: QWidget, width: int, height: int, anchor: QWidget | None = None,
               share: float = 0.92) -> None:
    """Resize `window` to width x height, or to `share` of the available screen when that is
    smaller, and centre it over `anchor` (its parent window) or the screen, inside the
    screen's available area: a 1280x720 laptop never gets a window taller than itself."""
    screen = ((anchor.screen() if anchor is not None else None) or window.screen()
              or QGuiApplication.primaryScreen())
    if screen is None:
        window.resize(width, height)
        return
    avail = screen.availableGeometry()
    w = max(min(width, int(avail.width() * share)), min(window.minimumWidth(), avail.width()))
    h = max(min(height, int(avail.height() * share)),
            min(window.minimumHeight(), avail.height()))
    window.resize(w, h)
    centre = (anchor.frameGeometry().center() if anchor is not None and anchor.isVisible()
              else avail.center())
    x = min(max(centre.x() - w // 2, avail.left()), avail.right() + 1 - w)
    y = min(max(centre.y() - h // 2, avail.top()), avail.bottom() + 1 - h)
    window.move(x, y)
