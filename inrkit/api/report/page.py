"""The report's HTML page: one file with its style, its script (``viewer.js``, inlined) and every payload inline."""

from __future__ import annotations

import time
from html import escape
from pathlib import Path

from inrkit.version import __version__

LIVE_REFRESH_SECONDS = 5  # a live report (a run still training) reloads itself this often

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1500px;padding:12px 20px;color:#222}
h1{font-size:22px;margin:6px 0}h2{font-size:18px;margin:18px 0 6px;border-bottom:1px solid #ddd}h3{font-size:15px}
nav a{margin-right:12px}code{background:#f3f3f3;padding:0 3px}
.charts{display:flex;flex-wrap:wrap;gap:8px}.chart{background:#fff;border:1px solid #e3e3e3}
.chart text{font-size:10px;fill:#333}.chart .chart-title{font-size:12px;font-weight:600}.chart .legend{font-size:10px}
.chart .grid{stroke:#eee}.chart .plot-area{fill:#fcfcfc;stroke:#ccc}
.run-body{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}th{background:#f6f6f6}
table.metrics th{text-align:left}
.zoom-group{display:flex;flex-wrap:wrap;gap:8px}.zoom-pane{margin:0}
.zoom-view{width:320px;height:320px;overflow:hidden;border:1px solid #ccc;background:#eee;cursor:grab;position:relative}
.gallery .zoom-view{width:180px;height:180px}
.zoom-view img{width:100%;height:100%;object-fit:contain;transform-origin:0 0;image-rendering:pixelated;user-select:none;
-webkit-user-drag:none}
figcaption{font-size:12px;color:#555;text-align:center}.hint{font-size:12px;color:#777}
.mesh-view canvas{border:1px solid #ccc;cursor:grab}.media.mesh{display:flex;gap:12px;flex-wrap:wrap}
video{max-width:480px}.turntable img{max-width:320px}
.gap{padding:1px 6px;border-radius:3px}.gap-good{background:#c8f0c8}.gap-near{background:#fbe3a6}
.gap-far{background:#f6b8b8}.gap-none{background:none}
.live{background:#fff3cd;padding:4px 8px;border:1px solid #f0d98c}
"""


def script() -> str:
    """The page's script: synchronised zoom and the mesh viewer (``viewer.js`` beside this module)."""
    return Path(__file__).with_name("viewer.js").read_text(encoding="utf-8")


def page(title: str, sections: list[tuple[str, str, str]], live: bool = False) -> str:
    """The whole HTML document; ``sections`` are ``(anchor, title, html)``. A live page reloads itself every
    :data:`LIVE_REFRESH_SECONDS` and says so."""
    refresh = f'<meta http-equiv="refresh" content="{LIVE_REFRESH_SECONDS}">' if live else ""
    banner = (f'<p class="live">training: this page reloads every {LIVE_REFRESH_SECONDS} s (updated '
              f'{time.strftime("%H:%M:%S")})</p>') if live else ""
    nav = " ".join(f'<a href="#{anchor}">{escape(name)}</a>' for anchor, name, _ in sections)
    # "</script" inside the inlined script would end the element early
    code = script().replace("</script", "<\\/script")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"generator\" content=\"inrkit {__version__}\">{refresh}<title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{banner}<nav>{nav}</nav>"
            + "".join(html for _, _, html in sections)
            + f'<p class="hint">written by inrkit {__version__} on {time.strftime("%Y-%m-%d %H:%M")}; '
            "self-contained: no network, no server</p>"
            f"<script>{code}</script></body></html>\n")
