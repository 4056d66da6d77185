"""`radclr evaluate RUN [--data PATH] [--split test] [--out metrics.json]`."""

from __future__ import annotations

from radclr.ranges import NON_NEGATIVE_INT, Range, arg_type


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="classification metrics with CIs, localization accuracy, linear eval",
                       description="Evaluate a run. On its own data (default) thresholds are fit on the validation "
                       "split and metrics reported on --split; with --data PATH of another dataset every image is "
                       "tested with the run's saved thresholds. Only the default evaluation (own data, best "
                       "checkpoint, test split) writes RUN/metrics.json and the files report/predict read. "
                       "--linear-eval instead probes the run's frozen encoder on --data (its own findings): "
                       "logistic regression over the C grid on the representations, patient-wise k-fold.")
    p.add_argument("run", help="run directory")
    p.add_argument("--data", help="dataset to evaluate on (default: the run's own)")
    p.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="split of the run's own data (default test; not with --data)")
    p.add_argument("--checkpoint", default="best", help="best | last | a checkpoint file")
    p.add_argument("--n-boot", type=arg_type(NON_NEGATIVE_INT, "--n-boot"), default=None, help="bootstrap resamples for CIs (default from config)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="metrics JSON path (default: RUN/metrics.json for the run's own test split at "
                   "the best checkpoint, else RUN/evaluations/<data>-<checkpoint>-<split>/metrics.json)")
    p.add_argument("--no-localization", action="store_true")
    p.add_argument("--linear-eval", action="store_true",
                   help="linear evaluation of the frozen encoder on --data (default: the run's own data) with that "
                   "dataset's findings: logistic regression, C grid, patient-wise stratified folds (seed 003); "
                   "writes RUN/evaluations/<data>-<checkpoint>-linear/metrics.json")
    p.add_argument("--folds", type=arg_type(Range(2, whole=True), "--folds"), default=5, help="--linear-eval: patient-wise folds (default 5)")
    p.add_argument("--findings", help="--linear-eval: comma-separated findings of --data to evaluate (default all)")
    p.add_argument("--task", choices=["multilabel", "multiclass"], default=None,
                   help="--linear-eval: the label task of --data (default: multilabel; the run's own task on its "
                   "own data)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from radclr.errors import RadclrError
    from radclr.runs.evaluate import evaluate_run, transfer_linear_eval
    from radclr.runtime.device import resolve_device

    resolve_device(args.device, key="--device")  # a device this machine lacks: one line, before any work
    if args.linear_eval:
        findings = [f.strip() for f in args.findings.split(",")] if args.findings else None
        res = transfer_linear_eval(args.run, args.data, checkpoint=args.checkpoint, folds=args.folds,
                                   findings=findings, task=args.task, device=args.device, out=args.out,
                                   progress=not args.no_progress)
        summary = (res["linear_eval"].get("mean") or {}).get("summary") or {}
        print(json.dumps({"data": res["data"], "task": res["task"], "findings": res["findings"],
                          "mean_over_folds": summary, "results": res["results_dir"]}, indent=2))
        return 0
    for flag, given in (("--folds", args.folds != 5), ("--findings", args.findings), ("--task", args.task)):
        if given:
            raise RadclrError(f"{flag} applies to --linear-eval")
    res = evaluate_run(args.run, data_path=args.data, split=args.split, checkpoint=args.checkpoint,
                       device=args.device, n_boot=args.n_boot, out=args.out, progress=not args.no_progress,
                       localization=False if args.no_localization else None)
    summary = {"split": res.get("split")}
    if "classification" in res:
        summary["auc"] = res["classification"]["auc"]
        if res["classification"].get("task") == "multiclass":
            summary.update({k: res["classification"][k] for k in ("accuracy", "f1_weighted", "f1_macro")})
    loc = res.get("localization") or {}
    if "iou_accuracy" in loc:
        summary["iou_accuracy_mean"] = {t: v.get("mean") for t, v in loc["iou_accuracy"].items()}
    elif loc or "localization_skipped" in res:  # e.g. a dataset without boxes: examples only, nothing scored
        summary["localization"] = res.get("localization_skipped") or loc.get("reason") or \
            "not scored: the evaluated images have no ground-truth boxes"
    if "linear_eval" in res and isinstance(res["linear_eval"].get("test"), dict):
        summary["linear_eval_auc"] = res["linear_eval"]["test"].get("auc")
    print(json.dumps(summary, indent=2))
    return 0
