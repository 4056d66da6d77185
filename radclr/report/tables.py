"""Runs in the seed papers' table layouts, so a user can put their numbers beside the published ones.

Layouts (``radclr table RUN... --layout L``; the paper table each reproduces is accepted as a name too):

* ``accuracy-f1-auc`` (seed 000 Tables 1-2, ``seed000-table1``): Accuracy, F1 score, AUC of one (binary) finding
  per model.
* ``auc-per-finding`` (seed 001 Table 1, ``seed001-table1``): AUC per finding and the mean over findings.
* ``localization`` (seed 001 Table 2, ``seed001-table2``): localization accuracy (correct if IoU > T) per T(IoU)
  in 0.1..0.7, per finding and mean; one block of rows per T.
* ``ablation`` (seed 001 Table 3, ``seed001-table3``; Base / w. FL / w. BYOP / Full model): AUC per finding +
  mean, with the ablation each BYOP run's configuration corresponds to.
* ``weighted-f1`` (seed 004 Table 1, ``seed004-table1``): weighted F1 of a linear classification of the frozen
  pretrained network (``configs/seed004/linear_eval.yaml``: frozen branches + one FC layer; a run without a
  classifier shows its logistic-regression linear evaluation).
* ``accuracy-weighted-f1`` (seed 004 Table 2, ``seed004-table2``): Accuracy and weighted F1 (support-weighted
  over both classes).

Multi-class runs (``data.task: multiclass``, seed 004's 4-class kidney task) report the arg-max accuracy and
weighted F1 over all classes (``Finding`` = ``all classes``) in the two seed 004 layouts; their per-class rows in
``auc-per-finding`` are one-vs-rest AUCs.

Every value of a run comes from its ``metrics.json`` with its 95 % patient-bootstrap interval; a value the run
does not have is NaN and printed ``n/a``. Finding columns are the runs' findings (NIH's 8 seed 001 findings
first, in the paper's order, when the runs have them all). ``published=True`` adds the paper's rows, marked
"published" in the ``Source`` column.

:func:`make_table` returns a numeric :class:`pandas.DataFrame`: key columns (``Model``, ``Source``, ...) and,
per metric column ``X``, ``X ci_low`` / ``X ci_high`` (and ``X sd`` for published mean +- sd). :func:`to_markdown`
prints it with ``0.812 [0.78, 0.84]`` cells; :func:`write_csv` writes it (``n/a`` for missing values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from radclr.errors import RadclrError
from radclr.report.published import published_rows
from radclr.report.results import IOU_THRESHOLDS, Estimate, RunResults, load_results

__all__ = ["LAYOUTS", "Layout", "NIH8", "layout", "make_table", "to_markdown", "write_csv", "metric_columns"]

#: the 8 NIH ChestX-ray14 findings of seed 001 Tables 1-3, in the paper's column order
NIH8 = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax")



@dataclass(frozen=True)
class Layout:
    """A table layout: its name, title, and the paper table it reproduces (whose published rows it can add)."""

    name: str
    title: str
    paper_table: str


LAYOUTS = {lay.name: lay for lay in (
    Layout("accuracy-f1-auc", "Accuracy, F1 score and AUC (seed 000 Tables 1-2 layout)", "seed000-table1"),
    Layout("auc-per-finding", "AUC per finding and mean (seed 001 Table 1 layout)", "seed001-table1"),
    Layout("localization", "Localization accuracy (correct if IoU > T) per finding and mean (seed 001 Table 2 "
           "layout)", "seed001-table2"),
    Layout("ablation", "Ablation: AUC per finding and mean (seed 001 Table 3 layout)", "seed001-table3"),
    Layout("weighted-f1", "Linear classification: weighted F1 score (seed 004 Table 1 layout)", "seed004-table1"),
    Layout("accuracy-weighted-f1", "Accuracy and weighted F1 score (seed 004 Table 2 layout)", "seed004-table2"),
)}
_BY_PAPER_TABLE = {lay.paper_table: lay for lay in LAYOUTS.values()}


def layout(name: str) -> Layout:
    """The layout called ``name`` (or by the paper table it reproduces, e.g. ``seed001-table3``)."""
    found = LAYOUTS.get(name) or _BY_PAPER_TABLE.get(name)
    if found is None:
        raise RadclrError(f"unknown layout {name!r}; choose one of {sorted(LAYOUTS)} "
                          f"(or a paper table: {sorted(_BY_PAPER_TABLE)})")
    return found
_SUFFIXES = (" ci_low", " ci_high", " sd")
NA = "n/a"


# --------------------------------------------------------------------------------------------------------------
def _finding_columns(runs: list[RunResults]) -> list[str]:
    seen: list[str] = []
    for r in runs:
        for f in r.findings:
            if f not in seen:
                seen.append(f)
    if not runs or set(NIH8) <= set(seen):
        return list(NIH8) + [f for f in seen if f not in NIH8]
    return seen


def _put(row: dict, column: str, est: Estimate) -> None:
    row[column] = math.nan if est.value is None else est.value
    row[f"{column} ci_low"] = math.nan if est.low is None else est.low
    row[f"{column} ci_high"] = math.nan if est.high is None else est.high


def _run_source(r: RunResults, what: str = "classification") -> str:
    if what == "localization":
        if not r.has_localization:
            return "this run: no localization results"
        n = r.get("localization", "n_images")
        return f"this run: {n} test image(s) with boxes" if n is not None else "this run"
    source = r.classification_source()
    if source is None:
        return "this run: no classifier and no linear evaluation"
    split = r.get("classification", "split") or r.get("split") or "test"
    n = r.n_test_images()
    text = f"this run: {split} split" + (f", {n} images" if n is not None else "")
    return text + (" (linear evaluation of the frozen encoder)" if source == "linear eval" else "")


ALL_CLASSES = "all classes"


def _pick_finding(r: RunResults, finding: str | None) -> str:
    if r.task == "multiclass" and finding in (None, "mean", ALL_CLASSES):
        return "mean"  # one accuracy / weighted F1 over all classes (arg-max)
    if finding:
        if finding != "mean" and finding not in r.findings:
            raise RadclrError(f"{r.run_dir}: finding {finding!r} not among the run's findings {r.findings}")
        return finding
    return r.findings[0] if len(r.findings) == 1 else "mean"


def _names(runs: list[RunResults], names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [r.name for r in runs]
    names = [str(n) for n in names]
    if len(names) != len(runs):
        raise RadclrError(f"--names gives {len(names)} name(s) for {len(runs)} run(s)")
    return names


def _published(lay: Layout, columns: list[str]) -> tuple[list[dict], list[str]]:
    rows, source, note = published_rows(lay.paper_table)
    out = []
    for p in rows:
        where = source if not p.get("table") else source.replace(source.split(" (")[0], str(p["table"]), 1)
        row = {"Model": f"{p['model']} (published)", "Source": f"published: {where}"}
        for c in columns:
            v = (p.get("values") or {}).get(c)
            _put(row, c, Estimate(float(v) if v is not None else None))
            sd = (p.get("sd") or {}).get(c)
            if sd is not None:
                row[f"{c} sd"] = float(sd)
        for key in ("t", "ablation", "dataset"):
            if key in p:
                row[key] = p[key]
        out.append(row)
    notes = [note] if note else []
    return out, notes


# --------------------------------------------------------------------------------------------------------------
def make_table(runs, layout_name: str, *, names: Sequence[str] | None = None, finding: str | None = None,
               published: bool = False) -> pd.DataFrame:
    """One row per run (and per published row with ``published=True``) in one of the :data:`LAYOUTS`.

    ``runs``: run directories, ``metrics.json`` paths or :class:`RunResults`. ``names``: row names (default: each
    config's ``name``). ``finding``: for ``accuracy-f1-auc`` / ``accuracy-weighted-f1``, the finding to report
    (default: the run's only finding, else ``mean``). Notes worth printing under the table are in
    ``df.attrs["notes"]``.
    """
    lay = layout(layout_name)
    kind = lay.name
    results = load_results(runs)
    row_names = _names(results, names)
    notes: list[str] = []
    if kind in ("accuracy-f1-auc", "accuracy-weighted-f1", "weighted-f1"):
        metrics = {"accuracy-f1-auc": [("Accuracy", "accuracy"), ("F1 score", "f1"), ("AUC", "auc")],
                   "accuracy-weighted-f1": [("Accuracy", "accuracy"), ("F1 score (weighted)", "f1_weighted")],
                   "weighted-f1": [("F1 score (weighted)", "f1_weighted")]}[kind]
        seed004 = kind != "accuracy-f1-auc"
        columns = [c for c, _ in metrics]
        rows = []
        for r, name in zip(results, row_names):
            f = _pick_finding(r, finding)
            multiclass = r.task == "multiclass" and f == "mean"
            row = {"Model": name, "Finding": ALL_CLASSES if multiclass else f, "Source": _run_source(r)}
            if seed004:
                row["Dataset"] = r.dataset
            for col, key in metrics:
                _put(row, col, r.classification(key, f))
            rows.append(row)
        keys = (["Dataset"] if seed004 else []) + ["Model", "Finding", "Source"]
        if published:
            pub, pnotes = _published(lay, columns)
            for p in pub:
                if seed004:
                    p["Dataset"] = p.pop("dataset", "")
                p["Finding"] = "Pneumonia" if kind == "accuracy-f1-auc" else "tumour class"
            rows = pub + rows
            notes += pnotes
        if any(r.get("Finding") == "mean" for r in rows):
            notes.append("Finding 'mean': the unweighted mean over the run's findings")
        if any(r.get("Finding") == ALL_CLASSES for r in rows):
            notes.append(f"Finding '{ALL_CLASSES}': a single-label multi-class run (data.task: multiclass), the "
                         "arg-max class of each image scored over all classes")
    elif kind in ("auc-per-finding", "ablation"):
        findings = _finding_columns(results)
        columns = findings + ["Mean"]
        rows = []
        for r, name in zip(results, row_names):
            row = {"Model": name, "Source": _run_source(r)}
            if kind == "ablation":
                row["Ablation"] = r.ablation_label() or NA
            for f in findings:
                _put(row, f, r.classification("auc", f) if f in r.findings else Estimate(None))
            _put(row, "Mean", r.classification("auc", "mean"))
            rows.append(row)
        keys = ["Model"] + (["Ablation"] if kind == "ablation" else []) + ["Source"]
        if published:
            pub, pnotes = _published(lay, columns)
            for p in pub:
                if kind == "ablation":
                    p["Ablation"] = p.pop("ablation", NA)
            rows = pub + rows
            notes += pnotes
        _mean_note(results, notes)
    else:  # localization
        findings = _finding_columns(results)
        columns = findings + ["Mean"]
        pub = _published(lay, columns) if published else ([], [])
        notes += pub[1]
        rows = []
        for t in IOU_THRESHOLDS:
            rows += [{**p, "T(IoU)": t} for p in pub[0] if f"{float(p['t']):.1f}" == t]
            for r, name in zip(results, row_names):
                row = {"T(IoU)": t, "Model": name, "Source": _run_source(r, "localization")}
                for f in findings:
                    _put(row, f, r.localization(t, f) if f in r.findings else Estimate(None))
                _put(row, "Mean", r.localization(t, "mean"))
                rows.append(row)
        for row in rows:
            row.pop("t", None)
        keys = ["T(IoU)", "Model", "Source"]
        _mean_note(results, notes)
        if any(r.has_localization for r in results):
            rule = next(r.get("localization", "definition") for r in results if r.has_localization)
            if rule:
                notes.append(f"localization rule: {rule}")
    ordered = keys + [c for col in columns for c in (col, f"{col} ci_low", f"{col} ci_high", f"{col} sd")]
    df = pd.DataFrame(rows)
    for c in ordered:
        if c not in df:
            df[c] = math.nan if c not in keys else ""
    df = df[[c for c in ordered if not (c.endswith(" sd") and df[c].isna().all())]]
    df.attrs["layout"] = kind
    df.attrs["paper_table"] = lay.paper_table
    df.attrs["title"] = lay.title + " (95 % patient-bootstrap CI in brackets)"
    df.attrs["notes"] = notes
    return df


def _mean_note(results: list[RunResults], notes: list[str]) -> None:
    sets = {tuple(r.findings) for r in results}
    if len(sets) > 1:
        notes.append("the runs have different findings: each run's Mean is over its own findings")


# --------------------------------------------------------------------------------------------------------------
def metric_columns(df: pd.DataFrame) -> list[str]:
    """The value columns of a :func:`make_table` frame (those with ``ci_low``/``ci_high`` companions)."""
    return [c for c in df.columns if f"{c} ci_low" in df.columns]


def _published_digits(paper_table: str | None, col: str) -> int:
    """Decimals the paper printed: seed 001 gives per-finding values to 2 decimals and the mean to 3; seed 000
    and seed 004 (percent with one decimal = fraction with three) to 3."""
    return 2 if (paper_table or "").startswith("seed001") and col != "Mean" else 3


def _cell(row: pd.Series, col: str, published: bool, paper_table: str | None = None) -> str:
    v = row[col]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return NA
    if published:
        d = _published_digits(paper_table, col)
        text = f"{float(v):.{d}f}"
        sd = row.get(f"{col} sd")
        if sd is not None and not (isinstance(sd, float) and math.isnan(sd)):
            text += f" ± {float(sd):.{d}f}"
        return text
    lo, hi = row.get(f"{col} ci_low"), row.get(f"{col} ci_high")
    return Estimate(float(v), None if pd.isna(lo) else float(lo), None if pd.isna(hi) else float(hi)).format()


def _md_escape(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, *, title: bool = True) -> str:
    """The table as Markdown: ``value [ci_low, ci_high]`` cells, ``n/a`` for missing values, notes below."""
    values = metric_columns(df)
    keys = [c for c in df.columns if c not in values and not c.endswith(_SUFFIXES)]
    header = keys + values
    lines = []
    if title and df.attrs.get("title"):
        lines += [f"**{df.attrs['title']}**", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
    lines.append("|" + "|".join("---" if h in keys else "---:" for h in header) + "|")
    for _, row in df.iterrows():
        pub = str(row.get("Source", "")).startswith("published")
        cells = [_md_escape(row[k]) if not (isinstance(row[k], float) and math.isnan(row[k])) else NA for k in keys]
        cells += [_cell(row, c, pub, df.attrs.get("paper_table")) for c in values]
        lines.append("| " + " | ".join(cells) + " |")
    notes = df.attrs.get("notes") or []
    if notes:
        lines.append("")
        lines += [f"* {note}" for note in notes]
    return "\n".join(lines) + "\n"


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the numeric table (values, ``ci_low``/``ci_high`` columns; ``n/a`` where a value is missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, na_rep=NA, float_format="%.6g")
    return path
