"""Run every benchmark in sequence (``make bench``); each writes its JSON into benchmarks/results/.

The real-data ones need ../shared/data and take a long time on a 2-core CPU (real_data.py: about 1.5 h);
pass names to run a subset: ``python benchmarks/run_all.py radiomics_bench loop_throughput``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["radiomics_bench", "loop_throughput", "byop_speed", "predict_bench", "byop_phantom", "real_data"]


def main(argv: list[str]) -> int:
    names = argv or ORDER
    unknown = sorted(set(names) - set(ORDER))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {ORDER}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        if subprocess.call([sys.executable, str(HERE / f"{name}.py")]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
