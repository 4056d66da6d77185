"""`radclr demo [--data PATH] [--out runs/demo]`: the whole pipeline on embedded (or your) data."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="train, evaluate, localize and report on the embedded sample (or --data)",
                       description="Radiomics-contrastive pretraining + fine-tuning + evaluation with CIs + "
                       "Grad-CAM localization + HTML report. Re-running reuses a finished run.")
    p.add_argument("--data", help="a dataset folder (any supported layout) instead of the embedded Kermany sample")
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. trainer.epochs=2")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from radclr.demo import run_demo

    paths = run_demo(args.out, args.data, args.overrides, progress=not args.no_progress)
    metrics = json.loads(open(paths["metrics"]).read())
    auc = (metrics.get("classification") or {}).get("auc") or {}
    ci = ((metrics.get("classification") or {}).get("ci") or {}).get("auc", {}).get("mean") or [None, None]
    if auc and auc.get("mean") is not None:
        lo, hi = ci
        span = f" [95% CI {lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
        print(f"test AUC (mean over {', '.join(k for k in auc if k != 'mean')}): {auc.get('mean'):.3f}{span}")
    print(f"report:  {paths['report']}")
    print(f"metrics: {paths['metrics']}")
    return 0
