#!/usr/bin/env bash
# The wheels radclr needs on a GPU machine that has no package index, beyond what such a machine already has.
#
#   bash scripts/gpu_wheels.sh [--python 3.12] [--dir .gpu_wheels]     HERE (with PyPI): download them
#   bash scripts/gpu_wheels.sh --install [--dir .gpu_wheels]            THERE (no index): install them
#
# The GPU machine lent to this project has its own Python 3.12 with torch 2.11 + CUDA 13, numba, scipy, pandas,
# scikit-learn and matplotlib (so also numpy, pillow, packaging, filelock); what radclr and its tests need beyond
# that -- MONAI, pydicom, PyYAML, tqdm, pytest, pytest-xdist and their own small dependencies -- is about 5 MB of
# wheels for CPython 3.12 / manylinux x86_64, downloaded here into the ignored folder .gpu_wheels/ (no deps are
# resolved: the list below is complete for that machine). SimpleITK (~50 MB) and PyRadiomics are left out: radclr
# trains and predicts without them (radclr doctor lists them as missing).
#
# --install puts them into .gpu_site/ (pip install --no-index --target; plain unzip where the machine has no pip:
# the wheels are pure Python except PyYAML, whose pure-Python part works alone) and prints the PYTHONPATH to use;
# scripts/gpu_check.sh runs it by itself when .gpu_wheels/ is there. The one command line on the GPU machine:
#   bash scripts/gpu_check.sh --out "$OUT/gpu_check.json"          (with .gpu_wheels carried beside the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=3.12
DIR=.gpu_wheels
MODE=download
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PYVER="$2"; shift 2 ;;
    --dir) DIR="$2"; shift 2 ;;
    --install) MODE=install; shift ;;
    *) echo "usage: bash scripts/gpu_wheels.sh [--install] [--python 3.12] [--dir .gpu_wheels]" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-python3}"

if [ "$MODE" = install ]; then
  SITE="${GPU_SITE:-$PWD/.gpu_site}"
  [ -d "$DIR" ] || { echo "gpu_wheels: no $DIR folder (run scripts/gpu_wheels.sh where PyPI is reachable)" >&2; exit 1; }
  mkdir -p "$SITE"
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --find-links "$DIR" --target "$SITE" --upgrade "$DIR"/*.whl
  else  # no pip there: a wheel is a zip laid out for site-packages
    for w in "$DIR"/*.whl; do "$PY" -m zipfile -e "$w" "$SITE"; done
  fi
  echo "export PYTHONPATH=$SITE\${PYTHONPATH:+:\$PYTHONPATH}"
  exit 0
fi

# pins: requirements-cpu.txt's for radclr's own dependencies, the versions the project's venv resolves for theirs
pin() { grep -i "^$1==" requirements-cpu.txt | head -n 1; }
PKGS=("$(pin monai)" "$(pin pydicom)" "$(pin PyYAML)" "$(pin tqdm)" "$(pin pytest)" "$(pin pytest-xdist)"
      "iniconfig==2.3.1" "pluggy==1.7.0" "Pygments==2.21.0" "execnet==2.1.2")
for p in "${PKGS[@]}"; do [ -n "$p" ] || { echo "gpu_wheels: a pin is missing from requirements-cpu.txt" >&2; exit 1; }; done
mkdir -p "$DIR"
ABI="cp${PYVER/./}"
"$PY" -m pip download -q --no-deps --only-binary=:all: --dest "$DIR" --python-version "$PYVER" \
  --implementation cp --abi "$ABI" --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  "${PKGS[@]}"
printf '%s\n' "${PKGS[@]}" >"$DIR/requirements.txt"
du -ch "$DIR"/*.whl | tail -n 1 | sed "s|total|in $DIR (Python $PYVER)|"
