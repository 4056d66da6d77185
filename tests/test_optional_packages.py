"""radclr imports, trains and predicts on PNG without SimpleITK and PyRadiomics (a GPU machine without a package
index may lack them, issue 19 item 10); what needs them says so in one line. Run in a fresh interpreter whose
import system refuses both packages."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import importlib.abc, json, sys
from pathlib import Path

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("SimpleITK", "radiomics"):
            raise ImportError(f"No module named {name!r} (refused by the test)")
        return None

sys.meta_path.insert(0, Refuse())
from radclr.cli.main import main
from radclr.errors import MissingPackageError
from radclr.io import read_image

tmp = Path(sys.argv[1])
rc_train = main(["train", sys.argv[2], "--out", str(tmp / "run"), "--no-progress", "--no-eval",
                 f"data.cache_dir={tmp / 'cache'}", "data.image_size=32", "data.phantom.n=32",
                 "data.phantom.size=32", "trainer.batch_size=8"])
png = sorted((tmp / "cache").rglob("*.png"))[0]
rc_predict = main(["predict", str(tmp / "run"), str(png), "--out", str(tmp / "pred"), "--no-progress",
                   "--no-reference", "--checkpoint", "last"])
(tmp / "x.nii.gz").write_bytes(b"not read")
try:
    read_image(tmp / "x.nii.gz")
    message = None
except MissingPackageError as e:
    message = str(e)
print(json.dumps({"train": rc_train, "predict": rc_predict, "nifti": message,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("SimpleITK", "radiomics"))}))
'''


def test_train_and_predict_without_simpleitk_and_pyradiomics(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(REPO / "configs/tiny/seed001_full.yaml")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["train"] == 0 and result["predict"] == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    assert (tmp_path / "pred" / "predictions.json").exists()
    assert result["loaded"] == []
    assert result["nifti"].startswith("reading NIfTI/NRRD/MetaImage files needs SimpleITK, which cannot be imported")
    assert result["nifti"].endswith("pip install SimpleITK") and "\n" not in result["nifti"]


def test_pyradiomics_engine_without_pyradiomics_is_one_line(tmp_path):
    code = SCRIPT.split("from radclr.cli.main")[0] + r'''
from radclr.errors import MissingPackageError
from radclr.radiomics.pyradiomics_engine import PyRadiomicsEngine, pyradiomics_params
try:
    PyRadiomicsEngine(pyradiomics_params(), jobs=2)
except MissingPackageError as e:
    print(e)
'''
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith("the PyRadiomics engine needs pyradiomics-bhklab, which cannot be imported")
