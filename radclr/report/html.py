"""HTML building blocks for the self-contained report: escaping, tables, embedded PNG figures, the page.

Everything the page needs is inside the one file: CSS inline, figures as ``data:image/png;base64`` URIs, no
scripts, fonts or stylesheets fetched from anywhere -- the report opens offline and can be mailed as is.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Sequence

__all__ = ["esc", "table", "figure_uri", "png_uri", "img", "page", "CSS"]

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --accent: #1f5fa8; --bg-alt: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.45;
       font: 15px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 0 0 10px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 8px; }
p.lead { color: var(--muted); margin-top: 0; }
nav { background: var(--bg-alt); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px;
      margin: 14px 0 24px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
nav a.omitted { color: var(--muted); }
section { margin: 0 0 34px; }
section.omitted p.reason, section.failed p.reason { color: var(--muted); font-style: italic; }
section.failed p.reason { color: #a3261b; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13.5px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; }
th { background: var(--bg-alt); text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.mean td { font-weight: 600; }
.scroll { overflow-x: auto; }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption, .note { color: var(--muted); font-size: 13px; }
pre { background: var(--bg-alt); border: 1px solid var(--line); padding: 10px; overflow-x: auto; font-size: 12.5px; }
details summary { cursor: pointer; color: var(--accent); }
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def table(header: Sequence[str] | None, rows: Sequence[Sequence], *, numeric: Sequence[bool] | None = None,
          row_classes: Sequence[str] | None = None, row_headers: bool = False) -> str:
    """An HTML table; cells are escaped; ``numeric[j]`` right-aligns column ``j``; ``header=None`` for a
    key/value table (``row_headers``: the first cell of each row is a ``<th>``)."""
    width = len(header) if header is not None else max((len(r) for r in rows), default=0)
    numeric = list(numeric) if numeric is not None else [False] * width
    out = ['<div class="scroll"><table>']
    if header is not None:
        out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<th scope="row">{esc(c)}</th>' if row_headers and j == 0 else
                        f'<td class="num">{esc(c)}</td>' if numeric[j] else f"<td>{esc(c)}</td>"
                        for j, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_uri(fig, dpi: int = 100) -> str:
    """A matplotlib Figure as a PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return png_uri(buf.getvalue())


def img(uri: str, alt: str, caption: str | None = None) -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{esc(alt)}">{cap}</figure>'


def png_file_uri(path: str | Path) -> str:
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"{path} is not a PNG file")
    return png_uri(data)


def page(title: str, subtitle: str, sections) -> str:
    """The whole document: heading, a navigation bar of the sections, then each section."""
    omitted = ' class="omitted"'
    nav = "".join(f'<a href="#{esc(s.id)}"{omitted if s.status != "ok" else ""}>{esc(s.title)}</a>'
                  for s in sections)
    body = "\n".join(s.html() for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body><main>"
        f"<h1>{esc(title)}</h1><p class=\"lead\">{esc(subtitle)}</p>"
        f"<nav aria-label=\"sections\">{nav}</nav>\n{body}\n</main></body></html>\n"
    )
