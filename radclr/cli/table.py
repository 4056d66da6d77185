"""`radclr table RUN... --layout L [--csv OUT] [--published] [--names a,b] [--finding F]`."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("table", help="print runs in the seed papers' table layouts (Markdown + CSV)",
                       description="One row per run, values with 95 % patient-bootstrap CIs from each run's "
                       "metrics.json; n/a where a run lacks a metric. --published adds the papers' own rows "
                       "(marked 'published').")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or metrics.json files)")
    p.add_argument("--layout", required=True,
                   help="accuracy-f1-auc (seed000-table1): Accuracy/F1/AUC; auc-per-finding (seed001-table1): AUC "
                   "per finding + mean; localization (seed001-table2): localization accuracy per T(IoU); ablation "
                   "(seed001-table3): ablation AUC; weighted-f1 (seed004-table1): linear classification weighted F1; "
                   "accuracy-weighted-f1 (seed004-table2): Accuracy + weighted F1 (multi-class runs: over all classes)")
    p.add_argument("--csv", metavar="OUT", help="also write the numeric table (values + CI columns) as CSV")
    p.add_argument("--published", action="store_true", help="add the paper's published rows for this layout")
    p.add_argument("--names", help="comma-separated row names, one per run (default: each config's name)")
    p.add_argument("--finding", help="accuracy-f1-auc / weighted-f1 / accuracy-weighted-f1: finding to report (default: the "
                   "run's only finding, else 'mean'; multi-class runs: all classes)")
    p.set_defaults(func=run)


def run(args) -> int:
    from radclr.report.tables import make_table, to_markdown, write_csv

    names = [n.strip() for n in args.names.split(",")] if args.names else None
    df = make_table(args.runs, args.layout, names=names, finding=args.finding, published=args.published)
    print(to_markdown(df), end="")
    if args.csv:
        print(f"\nCSV written to {write_csv(df, args.csv)}")
    return 0
