"""`radclr report`: one self-contained HTML page with every section, embedded figures and no external requests;
sections whose inputs are absent stay with a reason; metrics.json is written when missing."""

from __future__ import annotations

import base64
import io
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from radclr.cli.main import main
from radclr.errors import RadclrError
from radclr.report import write_report
from radclr.report.sections import SECTIONS
from run_factories import byop_report, simclr_run


class _Page(HTMLParser):
    """Sections (id -> class, heading, reason) and images of a report."""

    def __init__(self):
        super().__init__()
        self.sections, self.images, self.links, self._sec, self._tag = {}, [], [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._sec = a["id"]
            self.sections[self._sec] = {"class": a.get("class"), "heading": "", "reason": ""}
        elif tag == "img":
            self.images.append(a)
        elif tag in ("link", "script", "iframe"):
            self.links.append((tag, a))
        self._tag = (tag, a.get("class"))

    def handle_data(self, data):
        if self._sec is None or self._tag is None:
            return
        if self._tag[0] == "h2":
            self.sections[self._sec]["heading"] += data
        elif self._tag == ("p", "reason"):
            self.sections[self._sec]["reason"] += data

    def handle_endtag(self, tag):
        self._tag = None


def _parse(path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return text, page


def _decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_report_of_a_byop_run_has_every_section_and_embedded_figures(tmp_path_factory):
    out = byop_report(tmp_path_factory)
    text, page = _parse(out)
    assert list(page.sections) == [sid for sid, _, _ in SECTIONS]
    for sid, title, _ in SECTIONS:
        assert page.sections[sid]["heading"] == title
    status = {sid: s["class"] for sid, s in page.sections.items()}
    assert status == {"summary": "ok", "training": "ok", "classification": "ok", "localization": "ok",
                      "representation": "ok", "radiomics": "ok", "label-efficiency": "omitted",
                      "linear-eval": "omitted", "seeds": "omitted"}
    assert "--label-fractions" in page.sections["label-efficiency"]["reason"]
    assert "--seeds" in page.sections["seeds"]["reason"]
    # figures: loss curves, ROC, localization overlays, t-SNE, radiomics panel -- all decodable PNGs in the page
    assert len(page.images) >= 5
    for im in page.images:
        png = _decode(im["src"])
        arr = np.asarray(png.convert("L"), dtype=float)
        assert png.size[0] > 100 and arr.std() > 5  # a real picture, not blank
    # self-contained: no external resource of any kind
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    assert "http://" not in text and "https://" not in text and page.links == []
    # the numbers shown are the run's
    import json

    m = json.loads((out.parent / "metrics.json").read_text())
    auc = m["classification"]["auc"]["mean"]
    lo, hi = m["classification"]["ci"]["auc"]["mean"]
    assert f"{auc:.3f} [{lo:.2f}, {hi:.2f}]" in text
    assert "youden" in text and "patients" in text
    assert (out.parent / "radiomics_reference.npz").exists()  # built for radclr predict
    assert "Reference population" in text


def test_report_of_a_simclr_run_omits_classification_with_a_reason(tmp_path_factory, tmp_path):
    run = tmp_path / "simclr"
    shutil.copytree(simclr_run(tmp_path_factory), run)
    (run / "metrics.json").unlink()  # the report evaluates the run first
    (run / "fractions").mkdir()  # label-efficiency results as `radclr train --label-fractions` writes them
    (run / "fractions" / "summary.csv").write_text(
        "label_fraction,n_labeled,auc,auc_ci_low,auc_ci_high,accuracy\n0.1,3,0.61,0.40,0.80,0.6\n"
        "0.5,14,0.72,0.55,0.86,0.7\n1.0,27,0.78,0.64,0.90,0.75\n")
    out = write_report(run, tmp_path / "page" / "r.html")
    assert (run / "metrics.json").exists() and out == tmp_path / "page" / "r.html"
    text, page = _parse(out)
    cls = page.sections["classification"]
    assert cls["class"] == "omitted" and "no classifier" in cls["reason"]
    assert page.sections["localization"]["class"] == "omitted"
    assert page.sections["linear-eval"]["class"] == "ok" and page.sections["representation"]["class"] == "ok"
    assert "failed" not in {s["class"] for s in page.sections.values()}
    assert page.sections["label-efficiency"]["class"] == "ok"
    assert "0.720 [0.55, 0.86]" in text and "50 %" in text  # the fraction table with its intervals
    assert not (run / "radiomics_reference.npz").exists()  # nothing to predict with


def test_report_cli_and_bad_input(tmp_path_factory, tmp_path, capsys):
    run = simclr_run(tmp_path_factory)
    out = tmp_path / "cli.html"
    assert main(["report", str(run), "--out", str(out), "--no-progress"]) == 0
    assert "report written to" in capsys.readouterr().out and out.stat().st_size > 10_000
    assert main(["report", str(tmp_path)]) == 2
    assert "not a radclr run directory" in capsys.readouterr().err
    with pytest.raises(RadclrError):
        write_report(tmp_path / "nothing")


def test_tsne_computes_features_of_its_sample_only(tmp_path, monkeypatch):
    """Issue 18 item 7: a 5,000-image test split, three kept checkpoints -> representations of the 2,000 images
    the t-SNE shows (stratified by label, the sample tsne_figure itself draws), not of all 5,000 per checkpoint."""
    import radclr.report.sections as S
    from radclr.visualize.embedding import subsample_indices

    (tmp_path / "checkpoints").mkdir()
    for name in ("finetune-epoch1.pt", "finetune-epoch2.pt", "last.pt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"")
    rng = np.random.default_rng(0)
    test = np.sort(rng.choice(20_000, size=5_000, replace=False))
    names = np.where(rng.random(20_000) < 0.1, "Mass", "no finding")
    calls, drawn = [], {}

    class Ctx:
        run_dir, cfg, test_indices = tmp_path, {"seed": 3, "stages": [{"name": "finetune"}]}, test

        def class_labels(self, idx):
            return names[idx]

        def features(self, which, idx):
            calls.append((str(which), np.asarray(idx)))
            return rng.normal(size=(len(idx), 4))

    def fake_tsne(feats, labels, **kw):
        drawn.update(feats=feats, labels=labels, kw=kw)
        raise S.Omit("drawn")  # stop before rendering: what was computed is the point

    monkeypatch.setattr(S, "tsne_figure", fake_tsne)
    with pytest.raises(S.Omit, match="drawn"):
        S.representation(Ctx())
    assert len(calls) == 3 and {c[0].rsplit("/", 1)[-1] for c in calls} == {"finetune-epoch1.pt", "finetune-epoch2.pt",
                                                                             "last.pt"}
    expected = test[subsample_indices(names[test], 2000, 3)]
    for _, idx in calls:
        assert np.array_equal(idx, expected)
    assert len(drawn["labels"]) == 2000 and drawn["kw"]["max_points"] == 2000
    assert 150 < (drawn["labels"] == "Mass").sum() < 250  # the label mix of the split is kept


def test_report_defaults_to_the_best_device():
    import inspect

    from radclr.cli.main import build_parser

    assert build_parser().parse_args(["report", "RUN"]).device == "auto"
    assert inspect.signature(write_report).parameters["device"].default == "auto"
