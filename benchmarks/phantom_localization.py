"""Phantom localization benchmark: does the radiomics view (BYOP) localize better than plain supervised Grad-CAM?

    .venv/bin/python benchmarks/phantom_localization.py --stage val  --variants supervised byop ...   # choose
    .venv/bin/python benchmarks/phantom_localization.py --stage test --variants supervised byop        # report

    # issue 21's protocol: fresh training draws per seed, >= 5 seeds, supervised tuned with BYOP's budget
    .venv/bin/python benchmarks/phantom_localization.py --stage val --train-draw-base 100 --eval-seed 12 \
        --seeds 0 1 2 3 4 --tune-supervised                                  # -> phantom_localization_tuning.json
    .venv/bin/python benchmarks/phantom_localization.py --stage test --train-draw-base 200 --eval-seed 13 \
        --seeds 0 1 2 3 4 --variants supervised supervised-tuned byop

Protocol (written down before any number was looked at; see the README):

* **Training data**: the built-in phantoms of ``configs/phantom/common.yaml`` (400 images at 128 px, ground-truth
  boxes kept for 20 % of the annotated patients). Without ``--train-draw-base`` every run trains on phantom seed 1
  (the original protocol: one draw, on which the shipped options were chosen); with ``--train-draw-base B`` the run
  of training seed ``k`` trains on its own draw, phantom seed ``B + k`` (both variants of a seed see the same draw),
  so the seed-level comparison includes the data-draw variance.
* **Validation phantoms** (``--stage val``; settings are chosen on these only): 120 images, phantom seed 2 (or
  ``--eval-seed``), every lesion boxed. **Test phantoms** (``--stage test``; looked at once, for the configurations
  chosen on validation): 120 images, phantom seed 3 (or ``--eval-seed``). Neither is ever trained on. Choices made on
  a validation round must be tested on other draws: a different ``--train-draw-base`` and ``--eval-seed``.
* Each variant is ``configs/phantom/<config>.yaml`` plus overrides, trained once per ``--seeds`` seed (the ``seed``
  key: initialisation, sample order), evaluated with ``radclr evaluate RUN --data PHANTOMS`` (best checkpoint as the
  config says -- the validation classification loss of the run's own split; CAM threshold fit on the run's own
  annotated train/val images -- never on the evaluated phantoms).
* **Equal tuning budget** (``--tune-supervised``, stage val): supervised tries :data:`SUPERVISED_GRID` -- learning
  rate x epochs x Grad-CAM readout, as many settings as BYOP's exploration tried (counted from
  ``phantom_localization_exploration.json``) -- and the best by validation IoU>0.3 (mean over seeds; AUC breaks
  ties) is written to ``phantom_localization_tuning.json``; ``--stage test --variants supervised-tuned`` reads it.
* Reported per variant: mean +- sd over seeds of the mean AUC and of the localization accuracy (IoU > T) per
  finding; and two paired differences to ``supervised`` (:mod:`paired`): **seed level** (per-seed differences, mean,
  Student-t 95 % interval, sign count) and **case level** (each (image, finding) case's outcome averaged over the
  seeds of a variant, patients resampled, 2000 bootstrap draws). The seed-level interval is the one that accounts
  for another training run; the case-level one holds the trained models fixed.

Writes ``--out`` (JSON: every run's headline numbers, the summaries and the paired differences) and prints tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import machine  # noqa: E402
from loop_diagnostics import of_run  # noqa: E402
from paired import THRESHOLDS, case_level, seed_level  # noqa: E402

from radclr.data.phantom import write_phantom_dataset  # noqa: E402
from radclr.engine.config import resolve_config  # noqa: E402
from radclr.evaluation.seed_level import seed_interval  # noqa: E402
from radclr.runs import evaluate_run, train  # noqa: E402

STAGES = {"val": 2, "test": 3}  # phantom seed of the evaluation set
EVAL_VERSION = "3"  # bumped when the evaluation code changes (3: grid 0.1..0.95, threshold per finding, layer3)
N_EVAL = 120
TUNING_FILE = REPO / "benchmarks" / "results" / "phantom_localization_tuning.json"

# supervised's tuning budget (issue 21): learning rate x epochs trained, each read out two ways (evaluation
# overrides on the same runs) -- 3 x 2 x 2 = 12 settings, BYOP's exploration count
SUPERVISED_LRS = (1e-3, 3e-4, 1e-4)
SUPERVISED_EPOCHS = (10, 20)
BASE_LR = 1e-3  # configs/phantom/common.yaml
READOUTS = {"l3pf": [], "l4pf": ["evaluation.cam_layer=last"]}  # layer3 / layer4 Grad-CAM, threshold per finding

# name -> (config file under configs/phantom, overrides[, evaluation overrides]); variants that differ only in
# evaluation overrides share the trained run (the run directory is cloned with its checkpoints linked)
VARIANTS: dict[str, tuple] = {
    "supervised": ("supervised", []),
    "byop": ("byop", []),  # the shipped configs/phantom/byop.yaml
    # the candidates of the validation round (see benchmarks/results/phantom_localization_exploration.json)
    "byop-cam": ("byop", ["stages.0.lambda=0.1", "stages.0.background_negative=false"]),
    "byop-cam-bg-focal": ("byop", ["stages.0.loss=focal", "stages.0.alpha=null"]),
    "byop-global": ("byop", ["stages.0.embedding_pool=global", "stages.0.background_negative=false",
                             "stages.0.lambda=0.1"]),
    # issue 21's collapse remedy (chosen on validation draws 100+k / 12, tested on fresh draws 200+k / 13): the
    # contrastive gradient into the Grad-CAM map bounded at the classification gradient
    "byop-gradbound": ("byop", ["stages.0.contrastive_grad_bound=1.0"]),
    # the readout alone (evaluation overrides on the supervised runs): the paper's layer4 map and one threshold
    "supervised-layer4-one": ("supervised", [], ["evaluation.cam_layer=last", "evaluation.cam_threshold=auto"]),
    "supervised-layer4-perfinding": ("supervised", [], ["evaluation.cam_layer=last"]),
    "supervised-layer3-one": ("supervised", [], ["evaluation.cam_threshold=auto"]),
}


def _grid_name(lr: float, epochs: int, readout: str) -> str:
    return f"sup-lr{lr:g}-e{epochs}-{readout}"


def supervised_grid(lrs=SUPERVISED_LRS, epochs=SUPERVISED_EPOCHS, base_epochs: int = 20) -> dict[str, tuple]:
    """Supervised's tuning grid: every learning rate x epochs x readout (:data:`READOUTS`). A setting equal to the
    plain ``supervised`` run (lr 1e-3 of common.yaml, ``base_epochs``) has no training overrides, so it reuses
    that run instead of training it twice."""
    def overrides(lr, ep):
        return ([] if lr == BASE_LR else [f"trainer.optimizer.lr={lr}"]) + \
            ([] if ep == base_epochs else [f"trainer.epochs={ep}"])
    grid = {}
    for lr in lrs:
        for ep in epochs:
            for ro in READOUTS:
                grid[_grid_name(lr, ep, ro)] = ("supervised", overrides(lr, ep), READOUTS[ro])
                GRID_SETTINGS[_grid_name(lr, ep, ro)] = (lr, ep)
    return grid


GRID_SETTINGS: dict[str, tuple[float, int]] = {}  # grid name -> (learning rate, epochs)


SUPERVISED_GRID: dict[str, tuple] = supervised_grid()
VARIANTS.update(SUPERVISED_GRID)


def byop_settings_tried() -> int:
    """How many BYOP settings the validation exploration tried (``phantom_localization_exploration.json``)."""
    path = REPO / "benchmarks" / "results" / "phantom_localization_exploration.json"
    if not path.exists():
        return 0
    return sum(1 for k in json.loads(path.read_text())["runs"] if k.startswith("byop"))


def load_tuned(path: Path = TUNING_FILE) -> None:
    """Register ``supervised-tuned`` from the tuning file of a ``--tune-supervised`` validation round."""
    if Path(path).exists():
        chosen = json.loads(Path(path).read_text())["chosen"]
        VARIANTS["supervised-tuned"] = (chosen["config"], chosen["overrides"], chosen["evaluation_overrides"])


def choose_supervised(rows: list[dict], args) -> dict:
    """The grid setting with the best validation IoU>0.3 (mean over seeds; mean AUC breaks ties)."""
    scores = {}
    for name in SUPERVISED_GRID:
        rs = [r for r in rows if r["variant"] == name and r["iou_accuracy"]]
        if rs:
            scores[name] = (float(np.mean([r["iou_accuracy"]["0.3"]["mean"] for r in rs])),
                            float(np.mean([r["auc"]["mean"] for r in rs])))
    best = max(scores, key=lambda n: scores[n])
    config, _, eval_overrides = SUPERVISED_GRID[best]
    lr, epochs = GRID_SETTINGS[best]
    overrides = [f"trainer.optimizer.lr={lr}", f"trainer.epochs={epochs}"]  # explicit: the test round may differ
    out = {"chosen": {"name": best, "config": config, "overrides": overrides, "evaluation_overrides": eval_overrides,
                      "val_iou>0.3": scores[best][0], "val_auc_mean": scores[best][1]},
           "scores": {n: {"iou>0.3": v[0], "auc_mean": v[1]} for n, v in scores.items()},
           "settings_tried": {"supervised": len(scores), "byop": byop_settings_tried()},
           "rule": "max validation IoU>0.3 (mean over findings and seeds), then mean AUC",
           "stage": "val", "eval_seed": args.eval_seed, "train_draw_base": args.train_draw_base, "seeds": args.seeds}
    Path(args.tuning_file).write_text(json.dumps(out, indent=1))
    return out


def eval_phantoms(root: Path, stage: str, seed: int, n: int = N_EVAL) -> Path:
    path = root / f"phantoms-{stage}-seed{seed}" if n == N_EVAL else root / f"phantoms-{stage}-seed{seed}-n{n}"
    if not (path / "labels.csv").exists():
        write_phantom_dataset(path, n=n, size=128, seed=seed)
    return path


def run_one(name: str, seed: int, args, out_dir: Path, phantoms: Path) -> dict:
    config, overrides, *rest = VARIANTS[name]
    if config == "byop":  # per-epoch diagnostics in metrics.csv (they do not change what is trained)
        overrides = ["stages.0.diagnostics=true", *overrides]
    eval_overrides = rest[0] if rest else []
    trained = next((n for n, v in VARIANTS.items() if tuple(v[:2]) == tuple(VARIANTS[name][:2])
                    and not (v[2:] and v[2])), name)
    draw = None if args.train_draw_base is None else args.train_draw_base + seed
    tag = f"-seed{seed}" if draw is None else f"-seed{seed}-draw{draw}"
    data = [] if draw is None else [f"data.phantom.seed={draw}"]
    if args.n_train is not None:
        data.append(f"data.phantom.n={args.n_train}")
        tag += f"-n{args.n_train}"
    run = out_dir / "runs" / f"{trained}{tag}"
    done = run / "wall_time_s.txt"
    if not done.exists():
        if run.exists():
            import shutil

            shutil.rmtree(run)
        cfg = resolve_config(REPO / "configs" / "phantom" / f"{config}.yaml",
                             [f"trainer.epochs={args.epochs}", *data, *overrides, f"seed={seed}",
                              f"data.cache_dir={out_dir / 'cache'}", f"evaluation.n_boot={args.n_boot}"])
        t0 = time.time()
        train(cfg, run, progress=False, evaluate=True)
        done.write_text(f"{time.time() - t0:.1f}")
    if eval_overrides:
        run = _clone_for_evaluation(run, out_dir / "runs" / f"{name}{tag}", eval_overrides, args)
    target = run / "evaluations" / f"{phantoms.name}.json"
    stamp = run / "evaluated_with.txt"  # the code that evaluated it: re-evaluate runs evaluated by older code
    if target.exists() and (not stamp.exists() or stamp.read_text() != EVAL_VERSION):
        evaluate_run(run, progress=False, n_boot=args.n_boot)  # the primary evaluation (CAM calibration)
        target.unlink()
    if not target.exists():
        evaluate_run(run, data_path=str(phantoms), out=target, progress=False, n_boot=args.n_boot)
        stamp.write_text(EVAL_VERSION)
    m = json.loads(target.read_text())
    side = Path(m["results_dir"])
    loc = m.get("localization") or {}
    return {"variant": name, "seed": seed, "train_draw": draw, "wall_time_s": float(done.read_text()),
            "auc": m["classification"]["auc"], "iou_accuracy": loc.get("iou_accuracy"),
            "cam_threshold": (loc.get("cam_threshold") or {}).get("threshold"),
            "cases": _rel(side / "localization_all.csv"), "predictions": _rel(side / "predictions_all.csv"),
            "history": _rel(run / "metrics.csv"), "loop_diagnostics": of_run(run)}


def _rel(path: Path) -> str:
    """``path`` relative to the repository when inside it (results JSON without machine paths)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _clone_for_evaluation(run: Path, clone: Path, overrides: list[str], args) -> Path:
    """A run directory sharing ``run``'s checkpoints, with other evaluation settings, evaluated on its own data."""
    import yaml

    if not (clone / "metrics.json").exists():
        (clone / "checkpoints").mkdir(parents=True, exist_ok=True)
        for f in (run / "checkpoints").iterdir():
            link = clone / "checkpoints" / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
        for name in ("splits.csv", "metrics.csv", "wall_time_s.txt"):
            (clone / name).write_bytes((run / name).read_bytes())
        cfg = resolve_config(run / "config.yaml", overrides)
        (clone / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        evaluate_run(clone, progress=False, n_boot=args.n_boot)
    return clone


def summarise(rows: list[dict]) -> dict:
    out = {}
    for name in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == name]
        entry = {"n_seeds": len(rs), "auc_mean": _msd([r["auc"]["mean"] for r in rs]),
                 "wall_time_s": _msd([r["wall_time_s"] for r in rs])}
        for t in THRESHOLDS:
            entry[f"iou>{t}"] = {f: _msd([r["iou_accuracy"][t][f] for r in rs if r["iou_accuracy"]])
                                 for f in rs[0]["iou_accuracy"][t]} if rs[0]["iou_accuracy"] else None
        out[name] = entry
    return out


def _msd(values) -> dict:
    """Mean, sd and 95 % Student-t interval over seeds (:func:`radclr.evaluation.seed_level.seed_interval`)."""
    si = seed_interval(values)
    fin = lambda x: float(x) if np.isfinite(x) else None  # noqa: E731
    return {"mean": fin(si.mean), "sd": fin(si.sd), "t_ci": [fin(si.low), fin(si.high)],
            "values": [round(float(x), 4) for x in si.values]}


def print_tables(summary: dict, diffs: dict) -> None:
    print("\n| variant | seeds | mean AUC | IoU>0.1 | IoU>0.3 | IoU>0.5 | wall s |\n|---|---|---|---|---|---|---|")
    for name, s in summary.items():
        cells = [f"{s['auc_mean']['mean']:.3f} ± {s['auc_mean']['sd'] or 0:.3f}"]
        for t in THRESHOLDS:
            m = (s[f"iou>{t}"] or {}).get("mean") or {}
            cells.append(f"{m.get('mean', float('nan')):.3f} ± {m.get('sd') or 0:.3f}")
        print(f"| {name} | {s['n_seeds']} | " + " | ".join(cells) + f" | {s['wall_time_s']['mean']:.0f} |")
    if diffs:
        print("\n| variant - supervised | IoU>0.3 seed level: mean [95 % t CI] (A better/B better) | IoU>0.3 case "
              "level [95 % CI] | mean AUC seed level | mean AUC case level |\n|---|---|---|---|---|")
        for name, d in diffs.items():
            print(f"| {name} | {_seed_cell(d['seed_level'].get('iou>0.3'))} | {_case_cell(d['case_level']['iou>0.3'])}"
                  f" | {_seed_cell(d['seed_level'].get('auc_mean'))} | {_case_cell(d['case_level']['auc_mean'])} |")


def _seed_cell(d) -> str:
    if not d:
        return "n/a (< 2 seeds)"
    lo, hi = d["t_ci"]
    if lo is None or not np.isfinite(lo):
        return f"{d['mean_diff']:+.3f} (n={d['n_seeds']})"
    return (f"{d['mean_diff']:+.3f} [{lo:+.3f}, {hi:+.3f}] ({d['sign']['a_better']}/{d['sign']['b_better']}, "
            f"n={d['n_seeds']})")


def _case_cell(d) -> str:
    return f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"


def compare(rows: list[dict], base: str = "supervised") -> dict:
    """Every variant against ``base``: seed-level and case-level paired differences (:mod:`paired`)."""
    names = list(dict.fromkeys(r["variant"] for r in rows))
    if base not in names:
        return {}
    return {n: {"seed_level": seed_level(rows, n, base), "case_level": case_level(rows, n, base)}
            for n in names if n != base}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=sorted(STAGES), required=True)
    ap.add_argument("--variants", nargs="+", default=None,
                    help="default: the named variants (VARIANTS without the supervised grid)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20, help="epochs of every run (grid variants set their own)")
    ap.add_argument("--train-draw-base", type=int, default=None, metavar="B",
                    help="train the run of seed k on phantoms of data seed B+k (fresh draw per seed; default: the "
                    "config's one draw, phantom seed 1)")
    ap.add_argument("--eval-seed", type=int, default=None, metavar="S",
                    help="phantom seed of the evaluation set (default: val 2, test 3)")
    ap.add_argument("--n-train", type=int, default=None, help="training phantoms per run (default: the config's 400)")
    ap.add_argument("--n-eval", type=int, default=N_EVAL, help=f"evaluation phantoms (default {N_EVAL})")
    ap.add_argument("--tune-supervised", action="store_true",
                    help="(stage val) add supervised's tuning grid (SUPERVISED_GRID) and write the chosen setting to "
                    "phantom_localization_tuning.json")
    ap.add_argument("--n-boot", type=int, default=200, help="bootstrap draws of each run's own CIs")
    ap.add_argument("--n-boot-paired", type=int, default=2000, help="bootstrap draws of the case-level difference")
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "out" / "phantom_localization_v2"))
    ap.add_argument("--out", default=None, help="results JSON (default: benchmarks/results/phantom_localization_"
                    "<stage>.json)")
    ap.add_argument("--tuning-file", default=str(TUNING_FILE),
                    help="where --tune-supervised writes its choice and supervised-tuned reads it")
    ap.add_argument("--grid-lrs", type=float, nargs="+", default=list(SUPERVISED_LRS),
                    help="learning rates of supervised's tuning grid")
    ap.add_argument("--grid-epochs", type=int, nargs="+", default=list(SUPERVISED_EPOCHS),
                    help="epochs of supervised's tuning grid")
    args = ap.parse_args(argv)
    global SUPERVISED_GRID
    for name in SUPERVISED_GRID:  # the import-time default grid: replaced by this invocation's
        VARIANTS.pop(name, None)
    GRID_SETTINGS.clear()
    SUPERVISED_GRID = supervised_grid(args.grid_lrs, args.grid_epochs, args.epochs)
    VARIANTS.update(SUPERVISED_GRID)
    load_tuned(args.tuning_file)
    if args.tune_supervised and args.stage != "val":
        ap.error("--tune-supervised chooses on validation: use it with --stage val")
    variants = args.variants or [v for v in VARIANTS if v not in SUPERVISED_GRID]
    if args.tune_supervised:
        variants += [v for v in SUPERVISED_GRID if v not in variants]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        hint = " (supervised-tuned needs a --tune-supervised validation round first)" if "supervised-tuned" in \
            unknown else ""
        ap.error(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}{hint}")
    args.eval_seed = STAGES[args.stage] if args.eval_seed is None else args.eval_seed
    if args.train_draw_base is not None and args.train_draw_base + min(args.seeds) <= args.eval_seed <= \
            args.train_draw_base + max(args.seeds):
        ap.error(f"--eval-seed {args.eval_seed} is one of the training draws")
    out_dir = Path(args.out_dir)
    phantoms = eval_phantoms(out_dir, args.stage, args.eval_seed, args.n_eval)
    rows = []
    for name in variants:
        for seed in args.seeds:
            rows.append(run_one(name, seed, args, out_dir, phantoms))
            r = rows[-1]
            print(f"{name} seed {seed}: AUC {r['auc']['mean']:.3f}, IoU>0.3 {r['iou_accuracy']['0.3']['mean']:.3f} "
                  f"({r['wall_time_s']:.0f} s)", flush=True)
    summary = summarise(rows)
    diffs = compare(rows)
    # a BYOP variant (e.g. a remedy) against the shipped BYOP, where both ran
    byop_diffs = {n: d for n, d in compare(rows, base="byop").items() if n.startswith("byop")}
    tuning = choose_supervised(rows, args) if args.tune_supervised else None
    out = Path(args.out or REPO / "benchmarks" / "results" / f"phantom_localization_{args.stage}.json")
    out.write_text(json.dumps({"machine": machine(), "stage": args.stage, "eval_phantom_seed": args.eval_seed,
                               "n_eval": args.n_eval, "n_train": args.n_train, "epochs": args.epochs,
                               "seeds": args.seeds, "train_draw_base": args.train_draw_base,
                               "train_draws": None if args.train_draw_base is None else
                               [args.train_draw_base + s for s in args.seeds],
                               "variants": {n: VARIANTS[n] for n in summary}, "runs": rows, "summary": summary,
                               "paired_vs_supervised": diffs, "paired_vs_byop": byop_diffs,
                               "supervised_tuning": tuning,
                               "settings_tried": {"supervised_grid": len(SUPERVISED_GRID),
                                                  "byop_exploration": byop_settings_tried()}},
                              indent=1, default=str))
    print_tables(summary, diffs)
    for name, d in byop_diffs.items():
        print(f"\n{name} - byop, IoU>0.3: seed level {_seed_cell(d['seed_level'].get('iou>0.3'))}; case level "
              f"{_case_cell(d['case_level']['iou>0.3'])}")
    if tuning:
        print(f"\nsupervised tuned on validation: {tuning['chosen']['name']} (IoU>0.3 "
              f"{tuning['chosen']['val_iou>0.3']:.3f}); settings tried: {tuning['settings_tried']}")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
