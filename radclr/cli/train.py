"""`radclr train CONFIG --out RUN [key=value ...]` and `radclr train --resume RUN`."""

from __future__ import annotations

from radclr.ranges import Range, arg_type


def register(sub) -> None:
    p = sub.add_parser("train", help="train a configuration (all its stages) into a run directory",
                       description="Train a configuration into RUN. Dotted overrides such as trainer.epochs=2 "
                       "data.path=PATH stages.1.epochs=3 follow the config. Works under torchrun (DDP).")
    p.add_argument("config", nargs="?", help="configuration YAML (see configs/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides (dotted keys; +key=value adds a key)")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    p.add_argument("--label-fractions", metavar="F,F,...",
                   help="after the label-free stages, repeat the labelled stages for each fraction of training "
                   "labels (e.g. 0.01,0.05,0.1,0.2,0.5,1) into RUN/fractions/")
    p.add_argument("--folds", type=arg_type(Range(3, whole=True, why="a test and a validation fold per round"), "--folds"), metavar="K",
                   help="patient-wise K-fold cross-validation: K rounds into RUN/fold<f>/, summary in RUN/cv_summary.json")
    p.add_argument("--seeds", metavar="S,S,...",
                   help="one run per training seed into RUN/seed<k>/ (e.g. 0,1,2), summary with mean +- sd over "
                   "seeds next to each run's bootstrap CIs in RUN/seeds_summary.json")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from radclr.errors import RadclrError

    progress = False if args.no_progress else None
    if args.resume:
        if args.config and "=" in args.config:  # `train --resume RUN key=value`
            args.overrides.insert(0, args.config)
        elif args.config:
            raise RadclrError("--resume takes the run directory; do not pass a config file")
        _check_resume_out(args)
        from radclr.runs.train import RunFinished, train

        try:
            out = train(None, args.resume, args.overrides, resume=True, progress=progress, evaluate=not args.no_eval)
        except RunFinished as e:
            print(e)
            return 0
    else:
        if not args.config or not args.out:
            raise RadclrError("usage: radclr train CONFIG --out RUN [key=value ...]  (or --resume RUN)")
        if sum(x is not None for x in (args.folds, args.label_fractions, args.seeds)) > 1:
            raise RadclrError("choose one of --folds, --label-fractions and --seeds")
        if args.seeds is not None:
            from radclr.runs.seeds import train_seeds

            seeds = _number_list("--seeds", args.seeds, int, "integers separated by commas (e.g. 0,1,2)")
            out = train_seeds(args.config, args.out, seeds, args.overrides, progress=progress)
        elif args.folds is not None:
            from radclr.runs.cv import train_cross_validation

            out = train_cross_validation(args.config, args.out, args.folds, args.overrides, progress=progress)
        elif args.label_fractions is not None:
            from radclr.runs.fractions import train_label_fractions

            fractions = _number_list("--label-fractions", args.label_fractions, float,
                                     "numbers separated by commas (e.g. 0.1,0.5,1)")
            out = train_label_fractions(args.config, args.out, fractions, args.overrides, progress=progress)
        else:
            from radclr.runs.train import train

            out = train(args.config, args.out, args.overrides, progress=progress, evaluate=not args.no_eval)
    print(f"run written to {out}")
    return 0


def _check_resume_out(args) -> None:
    """``--resume RUN --out OTHER``: a run is resumed in place; an ``--out`` naming another folder is refused
    (never silently ignored); ``--folds``/``--seeds``/``--label-fractions`` are refused too."""
    from pathlib import Path

    from radclr.errors import RadclrError

    if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
        raise RadclrError(f"--resume {args.resume} continues that run in its own folder; --out {args.out} names "
                          f"another one (drop --out, or copy the run there first and resume the copy)")
    for flag, value in (("--folds", args.folds), ("--seeds", args.seeds), ("--label-fractions", args.label_fractions)):
        if value is not None:
            raise RadclrError(f"{flag} does not apply to --resume, which continues the one run {args.resume}")


def _number_list(flag: str, text: str, kind, words: str) -> list:
    """``"0.1,0.5"`` -> ``[0.1, 0.5]``; an empty list, a value that is not a number or one given twice is refused
    naming the flag (an empty ``--seeds ""`` used to be silently ignored, ``0.5,0.5`` to fail half-way)."""
    from radclr.errors import RadclrError

    items = [t.strip() for t in text.split(",")]
    try:
        values = [kind(t) for t in items if t]
    except ValueError:
        raise RadclrError(f"{flag} takes {words}, got {text!r}") from None
    if not values or any(not t for t in items):
        raise RadclrError(f"{flag} takes {words}, got {text!r}" + (" (an empty item)" if values else " (nothing)"))
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise RadclrError(f"{flag} lists {', '.join(f'{v:g}' for v in twice)} more than once: {text!r}")
    return values
