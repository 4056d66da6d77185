"""`radclr` command line: a thin layer over library functions.

Each command group lives in its own module exposing ``register(subparsers)``. The command modules are the one
place where library imports sit inside functions: a handler imports what its command needs (torch, monai, the
training engine) when it runs, so that ``radclr --help`` and ``radclr data ...`` start in a fraction of a second. User-facing errors (:class:`RadclrError`) are
printed as one line without a traceback, exit status 2; so is an ``OSError`` the library did not turn into one (a
file that cannot be written or read, named), except under ``-v``, which keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from radclr import __version__
from radclr.errors import RadclrError
from radclr.safe_write import describe

# command groups, in the order `radclr --help` lists them; each module defines register(subparsers)
COMMAND_MODULES = [
    "radclr.cli.data",
    "radclr.cli.radiomics",
    "radclr.cli.train",
    "radclr.cli.evaluate",
    "radclr.cli.table",
    "radclr.cli.report",
    "radclr.cli.predict",
    "radclr.cli.demo",
    "radclr.cli.doctor",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radclr",
        description="Label-efficient, interpretable chest X-ray classification and localization "
        "with image<->radiomics contrastive learning.",
    )
    parser.add_argument("--version", action="version", version=f"radclr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides may follow options (`train CFG --out RUN a.b=1`)
        bad = [e for e in extra if e.startswith("-") or "=" not in e]
        if getattr(args, "overrides", None) is None:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if bad:  # blame only what is wrong (a valid data.path=... next to `trainer.epochs 2` is not)
            hint = "; overrides are key=value without spaces (e.g. trainer.epochs=2)" if any(
                not e.startswith("-") for e in bad) else ""
            parser.error(f"unrecognized argument(s): {' '.join(bad)}{hint}")
        args.overrides.extend(extra)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        rc = args.func(args)
    except RadclrError as e:
        print(f"radclr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("radclr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `radclr data validate ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as e:  # last resort for a file the library does not check itself (full disk, read-only ...)
        if args.verbose:  # `radclr -v ...` keeps the traceback (for a bug report)
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"radclr: error: {where}{describe(e)} ({e.strerror or e})", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
