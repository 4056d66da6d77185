"""`radclr data summary|split|validate|synth|prepare` -- thin layer over :mod:`radclr.data` (no torch imported,
except by `prepare`, which builds a run's image store and fixed radiomics: :mod:`radclr.training_data.prepare`)."""

from __future__ import annotations

import sys

from radclr.ranges import FRACTION, FRACTION_OPEN, FRACTION_POS, NON_NEGATIVE_INT, POSITIVE_INT, Range, arg_type

FORMAT_CHOICES = ("folder", "nih", "rsna", "chexpert", "kermany", "covid")
FOLLOW_LINKS_HELP = ("read image files that symbolic links lead to outside the dataset folder (refused by default, "
                     "like ../ paths)")


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect, split, validate and synthesise datasets",
                       description="Datasets in any supported layout (auto-detected, or --format).")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    s = dsub.add_parser("summary", help="counts of images, patients, labels, boxes")
    s.add_argument("path", help="dataset folder")
    s.add_argument("--format", choices=FORMAT_CHOICES, help="dataset layout (default: auto-detect)")
    s.add_argument("--follow-links", action="store_true", help=FOLLOW_LINKS_HELP)
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(func=cmd_summary)

    sp = dsub.add_parser("split", help="patient-wise stratified split (+ k-fold, label fraction) saved as CSV")
    sp.add_argument("path", help="dataset folder")
    sp.add_argument("--out", required=True, metavar="SPLIT.csv",
                    help="CSV to write (image_id, patient_id, split[, fold][, labeled])")
    sp.add_argument("--format", choices=FORMAT_CHOICES, help="dataset layout (default: auto-detect)")
    sp.add_argument("--follow-links", action="store_true", help=FOLLOW_LINKS_HELP)
    sp.add_argument("--val", type=arg_type(FRACTION_OPEN, "--val"), default=None, metavar="F",
                    help="validation fraction (default 0.1; not with --folds)")
    sp.add_argument("--test", type=arg_type(FRACTION_OPEN, "--test"), default=None, metavar="F", help="test fraction (default 0.2; 0 with --folds)")
    sp.add_argument("--folds", type=arg_type(Range(2, whole=True), "--folds"), default=None, metavar="K",
                    help="patient-wise stratified K-fold instead of a validation part")
    sp.add_argument("--label-fraction", type=arg_type(FRACTION_POS, "--label-fraction"), default=None, metavar="F",
                    help="keep the labels of this fraction of the training images (whole patients; nested across F)")
    sp.add_argument("--seed", type=arg_type(NON_NEGATIVE_INT, "--seed"), default=0, metavar="S", help="random seed (default 0)")
    sp.set_defaults(func=cmd_split)

    v = dsub.add_parser("validate", help="read every image, check every record; exit 1 on any error")
    v.add_argument("path", help="dataset folder")
    v.add_argument("--format", choices=FORMAT_CHOICES, help="dataset layout (default: auto-detect)")
    v.add_argument("--follow-links", action="store_true", help=FOLLOW_LINKS_HELP)
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(func=cmd_validate)

    y = dsub.add_parser("synth", help="write a synthetic phantom dataset, or lesions on real normals (--background), "
                        "in the folder format")
    y.add_argument("out", help="output folder")
    y.add_argument("--n", type=arg_type(POSITIVE_INT, "--n"), required=True, metavar="N", help="number of images")
    y.add_argument("--size", type=arg_type(Range(8, whole=True), "--size"), default=None, metavar="S",
                   help="image side in pixels (default 128; with --background: the background's own size)")
    y.add_argument("--seed", type=arg_type(NON_NEGATIVE_INT, "--seed"), default=0, metavar="S", help="random seed (default 0)")
    y.add_argument("--box-fraction", type=arg_type(FRACTION, "--box-fraction"), default=1.0, metavar="F",
                   help="write the boxes of this fraction of the images with a lesion (seeded; the others are "
                   "unannotated, as in seed 001's semi-supervised setting; default 1: every lesion boxed)")
    y.add_argument("--background", metavar="DATASET",
                   help="insert the four phantom lesion kinds into the 'No Finding' images of this real dataset "
                   "(whole patients; negatives are untouched normals of other patients; see docs/data.md)")
    y.add_argument("--contrast", type=float, default=1.0, metavar="C",
                   help="with --background: scale of every lesion's opacity (default 1; choose it on validation)")
    y.add_argument("--part", choices=("all", "train", "holdout"), default="all",
                   help="with --background: only patients of this fixed patient-hash part (train/holdout never "
                   "share a patient, whatever the seeds; default all)")
    y.add_argument("--holdout-fraction", type=float, default=0.3, metavar="F",
                   help="with --background: fraction of patients in the holdout part (default 0.3)")
    y.add_argument("--p-normal", type=float, default=0.3, metavar="F",
                   help="with --background: fraction of patients written untouched as negatives (default 0.3)")
    y.add_argument("--format", choices=FORMAT_CHOICES, help="with --background: its layout (default: auto-detect)")
    y.add_argument("--follow-links", action="store_true", help=FOLLOW_LINKS_HELP)
    y.add_argument("--force", action="store_true", help="write into OUT even if it already holds a dataset")
    y.set_defaults(func=cmd_synth)

    pr = dsub.add_parser("prepare", help="build a config's image store (every core) and fixed-region radiomics once",
                         description="Build what every run of CONFIG and every torchrun rank only maps: the image "
                         "store (decoded with --jobs processes) and the fixed-region radiomics. Run it before "
                         "several runs share a cache, and before torchrun (docs/operation.md).")
    pr.add_argument("config", help="configuration YAML (see configs/)")
    pr.add_argument("overrides", nargs="*", help="key=value overrides (dotted keys), as for `radclr train`")
    pr.add_argument("--jobs", type=int, default=None, metavar="N",
                    help="processes decoding images (default: every core this process may use)")
    pr.add_argument("--no-radiomics", action="store_true", help="build the image store only")
    pr.add_argument("--no-progress", action="store_true", help="no progress bars")
    pr.set_defaults(func=cmd_prepare)

    def data_help(args) -> int:
        p.print_help()
        return 1

    p.set_defaults(func=data_help)



def _load(args):
    from radclr.data import load_dataset

    return load_dataset(args.path, format=args.format, follow_links=args.follow_links)


def cmd_summary(args) -> int:
    import json

    from radclr.data.summary import dataset_summary, format_summary

    summary = dataset_summary(_load(args))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def cmd_split(args) -> int:
    from radclr.data import splits as S

    ds = _load(args)
    table = S.make_split(ds, val=args.val, test=args.test, folds=args.folds, label_fraction=args.label_fraction,
                         seed=args.seed)
    out = S.save_split(table, args.out)
    summary = S.split_summary(ds, table)
    cols = [c for c in ("split", "fold", "images", "patients", "labeled") if c in summary.columns]
    print(summary[cols].to_string(index=False))
    print(f"split of {len(ds):,} images / {ds.records['patient_id'].nunique():,} patients written to {out}")
    return 0


def cmd_validate(args) -> int:
    import logging

    from radclr.data.validate import has_errors, validate_dataset

    logging.getLogger("radclr.data.loading").setLevel(logging.ERROR)  # the problems are printed below anyway
    problems = validate_dataset(args.path, format=args.format, progress=not args.no_progress,
                                follow_links=args.follow_links)
    for p in problems:
        print(p)
    n_err = sum(p.severity == "error" for p in problems)
    print(f"{n_err} error(s), {len(problems) - n_err} warning(s)", file=sys.stderr)
    return 1 if has_errors(problems) else 0


def cmd_synth(args) -> int:
    from pathlib import Path

    from radclr.data.phantom import write_phantom_dataset
    from radclr.errors import DataError

    out = Path(args.out)
    if (out / "labels.csv").exists() and not args.force:
        raise DataError(f"{out} already holds a dataset (labels.csv); use --force to overwrite")
    if args.background:
        return _synth_background(args, out)
    args.size = 128 if args.size is None else args.size
    if args.n < 1 or args.size < 32:
        raise DataError(f"--n must be >= 1 and --size >= 32, got --n {args.n} --size {args.size}")
    if not 0.0 <= args.box_fraction <= 1.0:
        raise DataError(f"--box-fraction must be in [0, 1], got {args.box_fraction}")
    ds = write_phantom_dataset(out, n=args.n, size=args.size, seed=args.seed, progress=True,
                               box_fraction=args.box_fraction)
    counts = ", ".join(f"{k} {v}" for k, v in ds.label_counts().items())
    boxed = int(ds.has_boxes().sum())
    print(f"{len(ds)} phantom images ({args.size}x{args.size}, seed {args.seed}) written to {out}: {counts}; "
          f"{len(ds.boxes)} boxes on {boxed} image(s)")
    return 0


def _synth_background(args, out) -> int:
    from radclr.data.background_lesions import write_background_lesions
    from radclr.errors import DataError

    if args.box_fraction != 1.0:
        raise DataError("--box-fraction applies to phantoms; with --background every lesion is boxed (choose the "
                        "annotated fraction with the training config)")

    ds = write_background_lesions(out, args.background, n=args.n, seed=args.seed, contrast=args.contrast,
                                  size=args.size, p_normal=args.p_normal, part=args.part,
                                  holdout=args.holdout_fraction, format=args.format, follow_links=args.follow_links,
                                  progress=True)
    counts = ", ".join(f"{k} {v}" for k, v in ds.label_counts().items())
    print(f"{len(ds)} images ({ds.records['patient_id'].nunique()} patients, part {args.part}) with lesions "
          f"inserted into normals of {args.background} (seed {args.seed}, contrast {args.contrast:g}) written to "
          f"{out}: {counts}; {len(ds.boxes)} boxes")
    return 0


def cmd_prepare(args) -> int:
    from radclr.engine.config import fixed_radiomics_rows, needs_fixed_radiomics, resolve_config
    from radclr.errors import ConfigError
    from radclr.training_data.prepare import prepare_shared_data
    from radclr.training_data.store import format_bytes

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    cfg = resolve_config(args.config, args.overrides)
    need = needs_fixed_radiomics(cfg) and not args.no_radiomics
    info = prepare_shared_data(cfg, need_radiomics=need, radiomics_rows=fixed_radiomics_rows(cfg), jobs=args.jobs,
                               progress=not args.no_progress)
    sec = info["seconds"]
    print(f"image store: {info['images']:,} images, {format_bytes(info['store_bytes'])} at {info['store']} "
          f"({sec['store']:.1f} s, {info['jobs']} process(es))")
    if need:
        print(f"fixed-region radiomics: {info['radiomics_computed']:,} of {info['images']:,} rows "
              f"({info['radiomics_rows']}), {info['radiomics_features']} features ({sec['radiomics']:.1f} s)")
    else:
        print("fixed-region radiomics: not needed by this config" + (" (--no-radiomics)" if args.no_radiomics else ""))
    return 0
