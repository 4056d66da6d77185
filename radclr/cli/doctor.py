"""`radclr doctor [CONFIG [key=value ...]] [--json]`: what this machine gives radclr (radclr.doctor)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("doctor", help="versions, CUDA and GPUs, packages, cache folder space -- run it first",
                       description="Report torch (build, CUDA, GPUs and their memory, cuDNN), numba, MONAI, pydicom, "
                       "PyRadiomics, SimpleITK, chromium, the multiprocessing start method and the cache folder "
                       "with its free space; with CONFIG, the cache folder the config uses and the space its data "
                       "needs. Exits 0; problems are WARNING lines.")
    p.add_argument("config", nargs="?", help="a training config: check its cache folder against its data")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. data.cache_dir=/scratch/radclr")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from radclr.doctor import as_json, doctor, format_items

    cfg = None
    if args.config:
        from radclr.engine.config import resolve_config

        cfg = resolve_config(args.config, args.overrides)
    items = doctor(cfg)
    print(json.dumps(as_json(items), indent=2) if args.json else format_items(items))
    return 0
