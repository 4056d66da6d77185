"""`radclr table`: the seed papers' layouts, CI formatting, n/a for missing metrics, published rows, CSV.

Most tests build ``metrics.json`` files with the evaluation code that writes them for real runs
(:func:`radclr.runs.evaluate.classification_section`, :func:`radclr.evaluation.localization.iou_accuracy`), so
the tables are checked against the actual layout; one test reads a tiny trained run end to end.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from radclr.cli.main import main
from radclr.errors import RadclrError
from radclr.report.results import Estimate, RunResults
from radclr.report.tables import NIH8, make_table, to_markdown, write_csv
from run_factories import byop_run


def _classification(findings, seed=0, n=60):
    from radclr.runs.evaluate import classification_section

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=(n, len(findings))).astype(float)
    p = np.clip(0.3 * y + 0.7 * rng.random(y.shape), 0, 1)
    pid = np.array([f"P{i // 2}" for i in range(n)])
    return classification_section(y, p, list(findings), pid, {f: 0.5 for f in findings}, "youden", 50, seed, "test")


def _localization(findings):
    from radclr.evaluation.localization import iou_accuracy

    gt, pred, pid = {}, {}, {}
    for i in range(48):  # 6 cases a finding: resamples hold every finding (the mean's interval needs them all)
        f = findings[i % len(findings)]
        gt[f"im{i}"] = {f: [(10.0, 10.0, 20.0, 20.0)]}
        pred[f"im{i}"] = {f: [(10.0 + i % 12, 10.0, 20.0, 20.0)]}  # IoU falls with i
        pid[f"im{i}"] = f"P{i}"
    return iou_accuracy(pred, gt, findings=findings, patient_ids=pid, n_boot=30, seed=0)


def _write_run(root, name, metrics, stages=None):
    root.mkdir(parents=True, exist_ok=True)
    cfg = {"name": name, "data": {"path": "/data/nih_cxr14"},
           "stages": stages or [{"name": "train", "method": "supervised"}]}
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    (root / "metrics.json").write_text(json.dumps({"method": "supervised", "checkpoint": "best.pt", **metrics}))
    return root


@pytest.fixture()
def runs(tmp_path):
    nih = _write_run(tmp_path / "nih", "nih-full",
                     {"findings": list(NIH8), "classification": _classification(NIH8),
                      "localization": _localization(list(NIH8))},
                     stages=[{"name": "train", "method": "byop", "loss": "focal", "byop": True}])
    small = _write_run(tmp_path / "small", "two-findings",
                       {"findings": ["Mass", "Nodule"], "classification": _classification(["Mass", "Nodule"], seed=1)},
                       stages=[{"name": "train", "method": "byop", "loss": "bce", "byop": False}])
    simclr = _write_run(tmp_path / "simclr", "simclr-only", {"findings": ["Mass", "Nodule"], "method": "simclr"})
    return {"nih": nih, "small": small, "simclr": simclr}


# --------------------------------------------------------------------------------------------------------------
def test_estimate_format_and_missing():
    assert Estimate(0.8123, 0.781, 0.8449).format() == "0.812 [0.78, 0.84]"
    assert Estimate(0.8123).format() == "0.812"
    assert Estimate(None, 0.1, 0.2).format() == "n/a"
    assert Estimate.of(float("nan"), [0.1, 0.2]).missing  # NaN is not a value
    assert Estimate.of(0.5, {"ci_low": None, "ci_high": 0.6}).format() == "0.500"


def test_seed001_table1_rows_columns_values(runs):
    df = make_table([runs["nih"], runs["small"]], "seed001-table1")
    assert list(df["Model"]) == ["nih-full", "two-findings"]
    values = [c for c in df.columns if c not in ("Model", "Source") and not c.endswith(("ci_low", "ci_high"))]
    assert values == list(NIH8) + ["Mean"]  # the paper's column order when all 8 NIH findings are present
    nih = RunResults(runs["nih"])
    auc = nih.metrics["classification"]["auc"]
    for f in NIH8:
        assert df.loc[0, f] == pytest.approx(auc[f])
        lo, hi = nih.metrics["classification"]["ci"]["auc"][f]
        assert (df.loc[0, f"{f} ci_low"], df.loc[0, f"{f} ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert df.loc[0, "Mean"] == pytest.approx(auc["mean"])
    # the 2-finding run has no Atelectasis ...: NaN, printed n/a; its own findings are filled
    assert math.isnan(df.loc[1, "Atelectasis"]) and not math.isnan(df.loc[1, "Mass"])
    md = to_markdown(df)
    row = next(line for line in md.splitlines() if line.startswith("| two-findings"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # Model, Source, Atelectasis, Cardiomegaly, Effusion, Infiltration, Mass, Nodule, Pneumonia, Pneumothorax, Mean
    assert cells[2:6] == ["n/a"] * 4 and cells[8:10] == ["n/a"] * 2
    assert all("[" in c for c in (cells[6], cells[7], cells[10]))  # values with their intervals
    mass = nih.classification("auc", "Mass")
    assert f"{mass.value:.3f} [{mass.low:.2f}, {mass.high:.2f}]" in md
    assert "different findings" in md  # the note that the runs' means are over different findings


def test_published_rows_are_marked_and_match_the_paper(runs):
    df = make_table([runs["nih"]], "seed001-table1", published=True)
    pub = df[df["Source"].str.startswith("published")]
    assert len(pub) == 8 and pub["Model"].str.endswith("(published)").all()
    ours = pub[pub["Model"].str.startswith("Our model")].iloc[0]
    assert ours["Mean"] == pytest.approx(0.838) and ours["Cardiomegaly"] == pytest.approx(0.93)
    assert pub[[f"{f} ci_low" for f in NIH8]].isna().all().all()  # papers give no intervals: none invented
    md = to_markdown(df)
    assert "| Rajpurkar et al. [28] (published) |" in md and "| 0.838 |" in md
    assert "published Mean is over the paper's 8 findings" in md
    # seed 004 kidney rows keep their +- sd (5-fold), not presented as a CI
    md4 = to_markdown(make_table([runs["nih"]], "seed004-table2", published=True))
    assert "0.643 ± 0.059" in md4 and "not a confidence interval" in md4


def test_seed001_table2_blocks_per_threshold(runs):
    df = make_table([runs["nih"], runs["small"]], "seed001-table2", published=True)
    assert list(df.columns[:3]) == ["T(IoU)", "Model", "Source"]
    assert list(pd.unique(df["T(IoU)"])) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    nih = RunResults(runs["nih"])
    for t in ("0.1", "0.4", "0.7"):
        row = df[(df["T(IoU)"] == t) & (df["Model"] == "nih-full")].iloc[0]
        assert row["Mean"] == pytest.approx(nih.metrics["localization"]["iou_accuracy"][t]["mean"])
        ci = nih.metrics["localization"]["iou_accuracy_ci"][t]["mean"]
        assert row["Mean ci_low"] == pytest.approx(ci["ci_low"])
    # a run without localization: every value n/a and the Source says why
    small = df[df["Model"] == "two-findings"]
    assert small[list(NIH8) + ["Mean"]].isna().all().all()
    assert (small["Source"] == "this run: no localization results").all()
    # published T = 0.2 block has 3 rows (Liu et al. report no 0.2 row)
    assert (df[(df["T(IoU)"] == "0.2")]["Source"].str.startswith("published")).sum() == 3


def test_seed001_table3_ablation_labels(runs):
    df = make_table([runs["nih"], runs["small"], runs["simclr"]], "seed001-table3")
    assert list(df["Ablation"]) == ["Full model", "Base", "n/a"]


@pytest.mark.parametrize("name, paper_table", [("accuracy-f1-auc", "seed000-table1"),
                                               ("auc-per-finding", "seed001-table1"),
                                               ("localization", "seed001-table2"), ("ablation", "seed001-table3"),
                                               ("weighted-f1", "seed004-table1"),
                                               ("accuracy-weighted-f1", "seed004-table2")])
def test_layouts_are_named_for_what_they_show_and_accept_the_paper_table(runs, name, paper_table):
    a = make_table([runs["nih"], runs["small"]], name, published=True)
    b = make_table([runs["nih"], runs["small"]], paper_table, published=True)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["layout"] == name and a.attrs["paper_table"] == paper_table


def test_seed000_and_seed004_layouts_pick_finding(runs):
    df = make_table([runs["small"]], "seed000-table1")
    assert list(df.columns[:3]) == ["Model", "Finding", "Source"]
    small = RunResults(runs["small"])
    assert df.loc[0, "Finding"] == "mean" and df.loc[0, "AUC"] == pytest.approx(small.classification("auc").value)
    df = make_table([runs["small"]], "seed000-table1", finding="Nodule")
    assert df.loc[0, "F1 score"] == pytest.approx(small.metrics["classification"]["f1"]["Nodule"])
    df = make_table([runs["small"]], "seed004-table2", finding="Mass")
    wf1 = small.metrics["classification"]["report"]["per_finding"]["Mass"]["f1_weighted"]
    assert df.loc[0, "F1 score (weighted)"] == pytest.approx(wf1["value"])
    assert df.loc[0, "F1 score (weighted) ci_high"] == pytest.approx(wf1["ci_high"])
    assert df.loc[0, "Dataset"] == "nih_cxr14"
    with pytest.raises(RadclrError, match="not among the run's findings"):
        make_table([runs["small"]], "seed000-table1", finding="Hernia")


def test_run_without_classifier_is_all_na(runs):
    df = make_table([runs["simclr"]], "seed001-table1")
    assert df[["Mass", "Nodule", "Mean"]].isna().all().all()
    assert "no classifier" in df.loc[0, "Source"]
    assert to_markdown(df).count("n/a") == 3


def test_linear_eval_is_used_and_labelled_when_there_is_no_classifier(runs, tmp_path):
    from radclr.evaluation.bootstrap import classification_report

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=(40, 2)).astype(float)
    rep = classification_report(y, rng.random((40, 2)), ["Mass", "Nodule"], patient_ids=np.arange(40),
                                thresholds={"Mass": 0.5, "Nodule": 0.5}, n_boot=20)
    run = _write_run(tmp_path / "lin", "linear", {"findings": ["Mass", "Nodule"], "linear_eval": {"test_ci": rep}})
    df = make_table([run], "seed001-table1")
    assert df.loc[0, "Mass"] == pytest.approx(rep["per_finding"]["Mass"]["auc"]["value"])
    assert "linear evaluation" in df.loc[0, "Source"]


def test_csv_round_trip_and_bad_input(runs, tmp_path):
    df = make_table([runs["nih"], runs["simclr"]], "seed001-table1", names=["A", "B"])
    path = write_csv(df, tmp_path / "out" / "t.csv")
    back = pd.read_csv(path)  # "n/a" reads back as missing
    assert list(back["Model"]) == ["A", "B"]
    assert back.loc[0, "Mass"] == pytest.approx(df.loc[0, "Mass"], rel=1e-5)
    assert back.loc[1, ["Mass", "Mean"]].isna().all()
    assert "n/a" in path.read_text()
    with pytest.raises(RadclrError, match="2 name"):
        make_table([runs["nih"]], "seed001-table1", names=["A", "B"])
    with pytest.raises(RadclrError, match="unknown layout"):
        make_table([runs["nih"]], "seed002-table9")
    with pytest.raises(RadclrError, match="no metrics.json"):
        make_table([tmp_path], "seed001-table1")


def test_cli_prints_markdown_and_writes_csv(runs, tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert main(["table", str(runs["nih"]), str(runs["small"]), "--layout", "seed001-table1", "--published",
                 "--names", "full,small", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| full |" in text and "| small |" in text and "(published)" in text and out.exists()
    assert main(["table", str(tmp_path / "missing"), "--layout", "seed001-table1"]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_table_of_a_trained_run(tmp_path_factory):
    run = byop_run(tmp_path_factory)
    r = RunResults(run)
    df = make_table([run], "seed001-table1")
    assert [c for c in df.columns if c in r.findings] == r.findings  # the run's findings, its own order
    assert df.loc[0, "Mean"] == pytest.approx(r.metrics["classification"]["auc"]["mean"])
    loc = make_table([run], "seed001-table2")
    assert len(loc) == 7 and loc["Mean"].notna().all()


def _multiclass_run(root, name, seed=0, n=48):
    from radclr.runs.evaluate import multiclass_section

    rng = np.random.default_rng(seed)
    classes = ["ccRCC", "pRCC", "chRCC", "oncocytoma"]
    y = np.eye(4)[rng.integers(0, 4, n)]
    p = rng.dirichlet(np.ones(4), n) + 0.4 * y
    p /= p.sum(1, keepdims=True)
    cls = multiclass_section(y, p, classes, np.arange(n) // 2, 40, seed, "test")
    run = _write_run(root, name, {"findings": classes, "classification": cls})
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"]["task"] = "multiclass"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run, cls


def test_seed004_tables_show_multiclass_accuracy_and_weighted_f1(tmp_path, runs):
    run, cls = _multiclass_run(tmp_path / "kidney", "kidney-finetune")
    assert RunResults(run).task == "multiclass"
    df = make_table([run, runs["small"]], "seed004-table2", published=True)
    row = df[df["Model"] == "kidney-finetune"].iloc[0]
    assert row["Finding"] == "all classes" and row["Accuracy"] == pytest.approx(cls["accuracy"])
    assert (row["F1 score (weighted) ci_low"], row["F1 score (weighted) ci_high"]) == \
        pytest.approx(tuple(cls["ci"]["f1_weighted"]))
    assert "single-label multi-class run" in to_markdown(df)
    t1 = make_table([run], "seed004-table1", published=True)
    assert list(t1.columns[:4]) == ["Dataset", "Model", "Finding", "Source"]
    ours = t1[t1["Model"] == "kidney-finetune"].iloc[0]
    assert ours["F1 score (weighted)"] == pytest.approx(cls["f1_weighted"])
    assert "0.520 ± 0.028" in to_markdown(t1)  # the paper's kidney row (5-fold mean +- sd)
    # the per-class view: one-vs-rest AUC per class
    auc = make_table([run], "seed001-table1")
    assert auc.loc[0, "pRCC"] == pytest.approx(cls["auc"]["pRCC"])


def test_multiclass_linear_evaluation_fills_table1_and_the_report_section(tmp_path):
    """A run without a classifier (pretraining alone) on a single-label task: its multinomial linear evaluation
    (with patient-bootstrap CIs) is what the seed 004 Table 1 layout and the report's linear-eval section show."""
    from radclr.evaluation.linear import linear_eval
    from radclr.report.sections import linear_eval as linear_section

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = rng.normal(size=(90, 5)) + np.eye(3)[y] @ rng.normal(size=(3, 5)) * 2
    pid = np.arange(30) // 2
    lin = linear_eval(x[:40], y[:40], x[40:60], y[40:60], x[60:], y[60:], findings=["a", "b", "c"],
                      patient_ids_test=pid, n_boot=30, task="multiclass")
    assert lin["task"] == "multiclass" and lin["test_ci"]["task"] == "multiclass"
    run = _write_run(tmp_path / "pre", "pretrain-only", {"findings": ["a", "b", "c"], "linear_eval": lin},
                     stages=[{"name": "pretrain", "method": "correspondence"}])
    row = make_table([run], "seed004-table1").iloc[0]
    assert row["Finding"] == "all classes" and row["F1 score (weighted)"] == pytest.approx(lin["test"]["f1_weighted"])
    assert row["F1 score (weighted) ci_low"] == pytest.approx(lin["test_ci"]["mean"]["f1_weighted"]["ci_low"])
    assert "linear evaluation of the frozen encoder" in row["Source"]

    class Ctx:
        metrics = {"linear_eval": lin}

    html = linear_section(Ctx())
    assert "Confusion matrix" in html and "Multinomial logistic regression" in html
