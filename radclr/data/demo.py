"""The embedded demo sample: real pediatric chest X-rays from Kermany et al. (Cell 2018), CC BY 4.0.

``radclr/data/resources/demo_kermany/`` holds a balanced, patient-whole sample of the Kermany *train* folder
(normal / bacterial / viral), downsampled to 128 x 128 8-bit PNG, in the radclr folder format. It is made by
``scripts/make_demo_sample.py``; its ``LICENSE.md`` credits the authors and lists the changes.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from radclr.errors import DataError

DEMO_PACKAGE = "radclr.data"
DEMO_FOLDER = "demo_kermany"


def demo_dataset_path() -> Path:
    """Folder of the embedded demo dataset (load it with :func:`radclr.data.load_dataset`)."""
    res = files(DEMO_PACKAGE).joinpath("resources").joinpath(DEMO_FOLDER)
    # installed packages are plain folders; as_file would extract a zipped one to a temporary folder that
    # disappears when the context closes, so zipped installs are refused with a clear message instead
    with as_file(res) as p:
        path = Path(p)
    if not (path / "labels.csv").is_file():
        raise DataError(f"embedded demo data not found at {path} (was radclr installed without its package data?)")
    return path
