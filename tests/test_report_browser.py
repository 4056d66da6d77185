"""The report renders in a real headless browser (Debian's chromium): every section, every image decoded,
a non-blank screenshot. ``make test`` installs chromium when it is missing and it can (root + apt-get,
scripts/install-test-deps.sh); where it cannot, the test is skipped -- except under CI (``CI`` set), where a
missing browser is a failure."""

from __future__ import annotations

import json
import os
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


def chromium_or_skip() -> str:
    browser = _chromium()
    if browser is None:
        why = "chromium is not installed (make test installs it as root: scripts/install-test-deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; under CI the headless-browser test must run, not be skipped")
        pytest.skip(why)
    return browser


def _run(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args], capture_output=True,
                          text=True, timeout=120)


def test_report_renders_in_headless_chromium(tmp_path_factory, tmp_path):
    browser = chromium_or_skip()
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


def test_a_missing_browser_is_a_skip_here_and_a_failure_under_ci(monkeypatch):
    import test_report_browser as me

    monkeypatch.setattr(me, "_chromium", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install-test-deps"):
        me.chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI the headless-browser test must run"):
        me.chromium_or_skip()


def _fake_bin(tmp: Path, **scripts: str) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in {"id": "echo 0", **scripts}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _install_script(bin_dir: Path, **env):
    script = Path(__file__).resolve().parents[1] / "scripts" / "install-test-deps.sh"
    return subprocess.run(["/bin/bash", str(script)], capture_output=True, text=True, timeout=60,
                          env={"PATH": str(bin_dir), **env})


def test_install_script_does_nothing_when_chromium_is_there(tmp_path):
    bin_dir = _fake_bin(tmp_path, chromium="true", **{"apt-get": f"echo called >> {tmp_path / 'apt.log'}"})
    r = _install_script(bin_dir)
    assert r.returncode == 0 and r.stdout == r.stderr == "" and not (tmp_path / "apt.log").exists()


def test_install_script_installs_chromium_with_apt_as_root(tmp_path):
    chromium = tmp_path / "bin" / "chromium"
    bin_dir = _fake_bin(tmp_path, **{"apt-get": f'echo "$@" >> {tmp_path / "apt.log"}; '
                                                f'printf "#!/bin/sh\\n" > {chromium}; chmod +x {chromium}'})
    r = _install_script(bin_dir)
    assert r.returncode == 0 and "installing chromium" in r.stdout
    assert "install -y -qq --no-install-recommends chromium" in (tmp_path / "apt.log").read_text()
    assert chromium.exists()


def test_install_script_without_apt_says_so_and_what_ci_does(tmp_path):
    r = _install_script(_fake_bin(tmp_path), CI="true")
    assert r.returncode == 0 and "cannot be installed here" in r.stderr and "under CI" in r.stderr
