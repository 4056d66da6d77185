"""`radclr report RUN [--out report.html]`."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page of a run's results (+ metrics.json)",
                       description="Write RUN/report.html (or --out): run summary, training curves, classification "
                       "with CIs and ROC curves, localization, t-SNE, radiomics panel, label efficiency, linear "
                       "evaluation -- figures embedded, no external requests. Evaluates the run first when it "
                       "has no metrics.json.")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="HTML file to write (default RUN/report.html)")
    p.add_argument("--device", default="auto", help="auto (default: the GPU when there is one) | cpu | cuda")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from radclr.report import write_report
    from radclr.runtime.device import resolve_device

    resolve_device(args.device, key="--device")  # a device this machine lacks: one line, before any work
    out = write_report(args.run, args.out, device=args.device, progress=not args.no_progress)
    print(f"report written to {out}")
    return 0
