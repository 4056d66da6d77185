"""`radclr doctor`: plain lines and JSON about this machine, the cache space a config needs, warnings that never
fail the command."""

import json
from collections import namedtuple

import torch

from radclr import doctor as dr
from radclr.cli.main import main
from radclr.engine.config import resolve_config
from radclr.runtime import device as rd

GiB = 1024**3


def _phantom_cfg(tmp_path, n=50, size=64, image_size=96):
    return resolve_config(base={"data": {"path": "phantom", "image_size": image_size, "cache_dir": str(tmp_path / "c"),
                                         "phantom": {"n": n, "size": size}}})


def test_lines_name_torch_and_every_section():
    items = dr.doctor()
    text = dr.format_items(items)
    for heading in ("[system]", "[torch]", "[packages]", "[cache]"):
        assert heading in text
    assert f"version: {torch.__version__}" in text
    assert f"CUDA available: {torch.cuda.is_available()}" in text
    assert "multiprocessing start method: " in text and "numba: " in text and "PyRadiomics: " in text
    by_name = {(i.section, i.name): i.value for i in items}
    assert by_name[("torch", "build")] == (f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU")


def test_store_size_of_a_phantom_config(tmp_path):
    need, how = dr.store_bytes_needed(_phantom_cfg(tmp_path))
    assert need == 50 * 96 * 96 + 50 * 64 * 64  # uint8 store + 8-bit phantom files
    assert "50 x 1 x 96 x 96" in how


def test_store_size_of_a_folder_dataset_counts_its_images(tmp_path):
    cfg = resolve_config(base={"data": {"path": "demo", "image_size": 32}})
    need, how = dr.store_bytes_needed(cfg)
    n = int(how.split(" x ")[0].split()[-1])
    assert n > 100 and need == n * 32 * 32


def test_too_little_space_and_an_unused_gpu_are_warnings_not_failures(tmp_path, monkeypatch, capsys):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(dr.shutil, "disk_usage", lambda p: usage(10 * GiB, 10 * GiB - 1000, 1000))
    monkeypatch.setattr(rd, "unused_gpu_note", lambda: "this machine shows NVIDIA GPUs (nvidia-smi) but ...")
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("data: {path: phantom, image_size: 96, phantom: {n: 50, size: 64}}\n")
    assert main(["doctor", str(cfg_file), f"data.cache_dir={tmp_path / 'c'}"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: the config needs about 0.00 GiB in the cache folder, 0.0 GiB are free" in out
    assert "WARNING: this machine shows NVIDIA GPUs" in out
    assert not (tmp_path / "c").exists()  # the doctor writes nothing (no phantom generated)


def test_json_and_missing_packages(monkeypatch, capsys):
    real = dr._version
    monkeypatch.setattr(dr, "_version", lambda d: None if d.lower().startswith(("pyradiomics", "simpleitk")) else real(d))
    real_spec = dr.importlib.util.find_spec
    monkeypatch.setattr(dr.importlib.util, "find_spec",
                        lambda m: None if m in ("radiomics", "SimpleITK") else real_spec(m))
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["torch"]["version"] == torch.__version__
    assert report["packages"]["PyRadiomics"] == "not installed" and report["packages"]["SimpleITK"] == "not installed"
    assert isinstance(report["warnings"], list)
    assert {"section", "name", "value", "warning"} <= set(report["items"][0])
