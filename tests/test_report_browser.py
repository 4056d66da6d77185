"""The report renders in a real headless browser (Debian's chromium): every section, every image decoded,
a non-blank screenshot. Skipped when chromium is not installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radclr.report.sections import SECTIONS
from run_factories import byop_report

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

# appended to a COPY of the report (the report itself has no scripts): once the page has loaded, write what the
# browser made of every image into the DOM, where --dump-dom shows it
PROBE = """<script>window.addEventListener('load', function () {
  var out = Array.prototype.map.call(document.images, function (im) {
    return {complete: im.complete, w: im.naturalWidth, h: im.naturalHeight}; });
  var p = document.createElement('pre'); p.id = 'image-probe'; p.textContent = JSON.stringify(out);
  document.body.appendChild(p); });</script>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _run(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args], capture_output=True,
                          text=True, timeout=120)


def test_report_renders_in_headless_chromium(tmp_path_factory, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    report = byop_report(tmp_path_factory)
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")

    dom = _run(browser, tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for sid, title, _ in SECTIONS:
        assert re.search(rf'<section id="{re.escape(sid)}"[^>]*>\s*<h2>{re.escape(title)}</h2>', html), sid
    probe = re.search(r'<pre id="image-probe">(.*?)</pre>', html, re.S)
    assert probe, "the load-event probe did not run"
    images = json.loads(probe.group(1).replace("&quot;", '"'))
    assert len(images) >= 5
    assert all(im["complete"] and im["w"] > 100 and im["h"] > 50 for im in images), images
    assert html.count('src="data:image/png;base64,') == len(images)

    shot = tmp_path / "shot.png"
    res = _run(browser, tmp_path, "--window-size=1280,4000", "--hide-scrollbars", f"--screenshot={shot}",
               report.as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (4000, 1280)
    assert pixels.std() > 10  # text, tables and figures, not a blank page
    top = pixels[:400]  # title, navigation bar and the start of the summary are drawn at the top
    assert (top < 128).mean() > 0.005
