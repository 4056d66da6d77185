"""`radclr radiomics extract` -- thin layer over :mod:`radclr.radiomics` (torch imported lazily).

The engines' speed benchmark is ``benchmarks/radiomics_bench.py`` (not a command: it spins background load,
measures peak memory in fresh processes and needs the repository's data)."""

from __future__ import annotations

from radclr.errors import ConfigError
from radclr.ranges import POSITIVE, POSITIVE_INT, arg_type

FORMAT_CHOICES = ("folder", "nih", "rsna", "chexpert", "kermany", "covid")


def _binning(parser) -> None:
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--bin-width", type=arg_type(POSITIVE, "--bin-width"), default=None, metavar="W", help="PyRadiomics binWidth (default 25)")
    g.add_argument("--bin-count", type=arg_type(POSITIVE_INT, "--bin-count"), default=None, metavar="N", help="PyRadiomics binCount (instead of binWidth)")


def register(sub) -> None:
    p = sub.add_parser("radiomics", help="PyRadiomics features of boxes, masks or whole images (torch or PyRadiomics)",
                       description="The 102 default 2-D PyRadiomics features, PyRadiomics-exact, batched in torch.")
    rsub = p.add_subparsers(dest="radiomics_command", metavar="SUBCOMMAND")

    e = rsub.add_parser("extract", help="feature table: one row per region (image_id, region_id, label, features)")
    e.add_argument("dataset", help="dataset folder (any layout radclr reads)")
    region = e.add_mutually_exclusive_group()
    region.add_argument("--boxes", dest="mode", action="store_const", const="boxes",
                        help="one region per box of the dataset (default)")
    region.add_argument("--whole-image", dest="mode", action="store_const", const="whole-image",
                        help="the whole image as the region (seed 000's FairRadi; normal images)")
    region.add_argument("--masks", dest="masks_dir", metavar="DIR",
                        help="one region per image: the nonzero pixels of DIR/<image stem>.<ext>")
    e.add_argument("--params", metavar="PARAMS.yaml", help="PyRadiomics parameter file (setting/featureClass/imageType)")
    _binning(e)
    e.add_argument("--engine", choices=("torch", "pyradiomics"), default="torch", help="engine (default torch)")
    e.add_argument("--jobs", type=arg_type(POSITIVE_INT, "--jobs"), default=1, metavar="N", help="worker processes for --engine pyradiomics")
    e.add_argument("--backend", choices=("auto", "numba", "torch"), default=None,
                   help="torch engine on the CPU: compiled numba kernels (auto, the default) or the torch reference "
                        "path (default: $RADCLR_RADIOMICS_BACKEND or auto)")
    e.add_argument("--device", default=None, metavar="DEV", help="torch device, e.g. cpu or cuda (default cpu)")
    e.add_argument("--batch-size", type=arg_type(POSITIVE_INT, "--batch-size"), default=None, metavar="N", help="regions per torch batch (default: automatic)")
    e.add_argument("--cache", metavar="DIR", help="feature cache folder: re-runs read rows from it")
    e.add_argument("--format", choices=FORMAT_CHOICES, help="dataset layout (default: auto-detect)")
    e.add_argument("--follow-links", action="store_true",
                   help="read image files that symbolic links lead to outside the dataset folder (refused by default)")
    e.add_argument("--out", required=True, metavar="FEATURES.csv", help="CSV to write")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_extract, mode=None)

    def radiomics_help(args) -> int:
        p.print_help()
        return 1

    p.set_defaults(func=radiomics_help)


def _settings(args):
    from radclr.radiomics import Settings

    if args.bin_count is not None:
        return Settings(bin_count=args.bin_count)
    return Settings(bin_width=25.0 if args.bin_width is None else args.bin_width)


def cmd_extract(args) -> int:
    from pathlib import Path

    from radclr.data import load_dataset
    from radclr.errors import OutputError
    from radclr.safe_write import atomic_path, writable_dir
    from radclr.progress import progress_bar
    from radclr.radiomics.allocator import tune_malloc
    from radclr.radiomics.params import load_params
    from radclr.radiomics.table import dataset_regions, extract_table

    out = Path(args.out)  # checked before any work: the table is written only at the end
    if out.is_dir():
        raise OutputError(out, "--out is a folder; give the CSV file to write, e.g. --out "
                               f"{out / 'features.csv'}")
    writable_dir(out.parent, "folder of --out")
    tune_malloc()
    if args.params and (args.bin_width is not None or args.bin_count is not None):
        raise ConfigError("give the binning either in --params or with --bin-width/--bin-count, not both")
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    if args.jobs > 1 and args.engine != "pyradiomics":
        raise ConfigError("--jobs applies to --engine pyradiomics (the torch engine runs batched in one process)")
    if args.device is not None:  # checked before any work (a CPU-only torch asked for cuda: one line)
        from radclr.runtime.device import resolve_device

        args.device = str(resolve_device(args.device, key="--device"))
    params = load_params(args.params) if args.params else None
    if params is not None and args.engine == "torch":
        params.check_torch()
    mode = "masks" if args.masks_dir else (args.mode or "boxes")
    ds = load_dataset(args.dataset, format=args.format, follow_links=args.follow_links)
    total = len(dataset_regions(ds, mode, args.masks_dir))
    with progress_bar(total=total, desc="radiomics", unit="region", enabled=not args.no_progress) as bar:
        table = extract_table(
            ds, mode=mode, masks_dir=args.masks_dir, settings=_settings(args), params=params, engine=args.engine,
            device=args.device, batch_size=args.batch_size, jobs=args.jobs, cache=args.cache, progress=bar.update,
            backend=args.backend,
        )
    with atomic_path(out, "feature table") as tmp:
        table.to_csv(tmp, index=False)
    n_feat = table.shape[1] - 3
    nan_rows = table[table.iloc[:, 3:].isna().all(axis=1)]
    named = [f"{r.image_id} {'box ' + str(r.region_id) if mode == 'boxes' else mode}"
             + (f" ({r.label})" if mode == "boxes" and r.label else "") for r in nan_rows.itertuples()]
    more = f" and {len(named) - 3} more" if len(named) > 3 else ""
    print(f"wrote {out}: {len(table)} region(s) x {n_feat} feature(s) ({args.engine})"
          + (f"; {len(named)} region(s) with NaN features: {', '.join(named[:3])}{more} (reasons in the log)"
             if named else ""))
    return 0
