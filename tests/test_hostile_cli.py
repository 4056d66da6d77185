"""Issue 20, command lines and configs: numbers out of range (CLI options and config keys) named before any
work; devices this machine lacks; YAML given twice or empty or binary; a checkpoint that is not one; list flags
that are empty or repeat; an override without ``=`` blamed alone."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO
from data_factories import gradient, small_folder, write_dicom

from radclr.cli.main import main
from radclr.engine.config import resolve_config
from radclr.errors import ConfigError

from run_factories import cli  # noqa: E402

TINY = REPO / "configs" / "tiny" / "seed000_resnet18.yaml"


# ------------------------------------------------------------------ 4. numbers on the command line
@pytest.mark.parametrize("argv, message", [
    (["radiomics", "extract", "DS", "--out", "f.csv", "--bin-width", "0"], "--bin-width must be a number > 0, got '0'"),
    (["radiomics", "extract", "DS", "--out", "f.csv", "--bin-width", "nan"], "--bin-width must be a number > 0, got 'nan'"),
    (["radiomics", "extract", "DS", "--out", "f.csv", "--bin-count", "0"], "--bin-count must be a whole number >= 1"),
    (["radiomics", "extract", "DS", "--out", "f.csv", "--batch-size", "0"], "--batch-size must be a whole number >= 1"),
    (["evaluate", "RUN", "--linear-eval", "--folds", "1"], "--folds must be a whole number >= 2, got '1'"),
    (["evaluate", "RUN", "--n-boot", "-1"], "--n-boot must be a whole number >= 0"),
    (["predict", "RUN", "x.png", "--reference-max-images", "0"], "--reference-max-images must be a whole number >= 1"),
    (["predict", "RUN", "x.png", "--reference-max-images", "-5"], "--reference-max-images must be a whole number >= 1"),
    (["predict", "RUN", "x.png", "--top-k", "-1"], "--top-k must be a whole number >= 0, got '-1'"),
    (["train", "CFG", "--out", "R", "--folds", "0"], "--folds must be a whole number >= 3"),
    (["train", "CFG", "--out", "R", "--folds", "-3"], "--folds must be a whole number >= 3"),
    (["data", "split", "DS", "--out", "s.csv", "--val", "1.5"], "--val must be a number in [0, 1)"),
    (["data", "synth", "OUT", "--n", "0"], "--n must be a whole number >= 1"),
])
def test_numeric_options_out_of_range_are_one_line_naming_the_flag(tmp_path, capsys, argv, message):
    argv = [str(tmp_path / a) if a in ("DS", "RUN", "R", "OUT", "f.csv", "s.csv") else a for a in argv]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing was started


@pytest.mark.parametrize("override, message", [
    ("trainer.optimizer.lr=-0.1", "trainer.optimizer.lr must be a number > 0, got -0.1"),
    ("trainer.optimizer.lr=nan", "trainer.optimizer.lr must be a number > 0, got nan"),
    ("trainer.batch_size=1e9", "trainer.batch_size must be a whole number in [1, 65536], got 1000000000"),
    ("data.image_size=7", "data.image_size must be a whole number in [32, 4096]"),
    ("radiomics.bin_width=0", "radiomics.bin_width must be a number > 0"),
    ("stages.0.batch_size=0", "stages.0.batch_size must be a whole number in [1, 65536], got 0"),
    ("evaluation.linear_eval_folds=1", "evaluation.linear_eval_folds must be a whole number >= 2, or 0 (0 = off), got 1"),
    ("evaluation.cam_threshold=1.5", "evaluation.cam_threshold must be a number in [0, 1], got 1.5"),
    ("data.split.test=1", "data.split.test must be a number in [0, 1), got 1"),
])
def test_config_values_out_of_range_name_the_key_before_the_run_directory(tmp_path, capsys, override, message):
    rc, _, err = cli(capsys, "train", TINY, "--out", tmp_path / "run", override)
    assert rc == 2 and message in err
    assert not (tmp_path / "run").exists()


def test_every_shipped_config_is_in_range():
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        resolve_config(path)


# ------------------------------------------------------------------ 5. devices
def test_a_cuda_device_this_machine_lacks_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ds = small_folder(tmp_path / "ds")
    rc, _, err = cli(capsys, "radiomics", "extract", ds, "--out", tmp_path / "f.csv", "--device", "cuda")
    assert rc == 2 and "--device is 'cuda' but no CUDA device is available" in err
    assert not (tmp_path / "f.csv").exists()
    rc, _, err = cli(capsys, "radiomics", "extract", ds, "--out", tmp_path / "f.csv", "--device", "gpu")
    assert rc == 2 and "--device: unknown device 'gpu'" in err
    rc, _, err = cli(capsys, "train", TINY, "--out", tmp_path / "run", "trainer.device=cuda")
    assert rc == 2 and "trainer.device is 'cuda' but no CUDA device is available" in err
    assert not (tmp_path / "run").exists()
    for argv in (["evaluate", tmp_path / "run"], ["report", tmp_path / "run"],
                 ["predict", tmp_path / "run", tmp_path / "x.png", "--out", tmp_path / "p"]):
        rc, _, err = cli(capsys, *argv, "--device", "cuda")
        assert rc == 2 and "--device is 'cuda' but no CUDA device is available" in err


# ------------------------------------------------------------------ 6, 9. YAML files
def test_a_checkpoint_passed_as_the_config(tmp_path, capsys):
    import torch

    ckpt = tmp_path / "best.pt"
    torch.save({"w": torch.ones(2)}, ckpt)
    rc, _, err = cli(capsys, "train", ckpt, "--out", tmp_path / "run")
    assert rc == 2 and f"{ckpt}: not a config file: it is a binary file -- a checkpoint?" in err
    assert not (tmp_path / "run").exists()


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, capsys):
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(f"base: {TINY}\ndata:\n  path: {tmp_path / 'mine'}\ntrainer: {{epochs: 1}}\ndata:\n  path: phantom\n")
    rc, _, err = cli(capsys, "train", cfg, "--out", tmp_path / "run")
    assert rc == 2 and f"{cfg}:5: key 'data' appears twice in the same section (first on line 2)" in err
    nested = tmp_path / "nested.yaml"
    nested.write_text("trainer:\n  epochs: 1\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"nested.yaml:3: key 'epochs' appears twice"):
        resolve_config(nested)


def test_a_parameter_file_with_a_key_twice(tmp_path):
    from radclr.radiomics.params import load_params

    p = tmp_path / "params.yaml"
    p.write_text("setting:\n  binWidth: 25\n  binWidth: 5\n")
    with pytest.raises(ConfigError, match=r"params.yaml:3: key 'binWidth' appears twice"):
        load_params(p)


def test_an_empty_config_is_refused(tmp_path, capsys):
    for text in ("", "# only a comment\n"):
        (tmp_path / "empty.yaml").write_text(text)
        rc, _, err = cli(capsys, "train", tmp_path / "empty.yaml", "--out", tmp_path / "run")
        assert rc == 2 and "empty.yaml: the config file is empty" in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ 8. DICOM decoders
def test_a_dicom_whose_transfer_syntax_does_not_match_prints_one_line(tmp_path, capsys, caplog):
    from pydicom.uid import JPEGBaseline8Bit

    from data_factories import make_folder

    ds = make_folder(tmp_path / "ds", [("a.dcm", "p1", "Mass")], write_images=False)
    write_dicom(ds / "images" / "a.dcm", gradient(32, 32, dtype=np.uint16), transfer_syntax=JPEGBaseline8Bit)
    rc, out, err = cli(capsys, "radiomics", "extract", ds, "--whole-image", "--out", tmp_path / "f.csv",
                       "--no-progress")
    assert rc == 2 and "a.dcm: corrupt compressed pixel data ('JPEG Baseline" in err
    assert "does not match the data" in err
    assert "pydicom" not in caplog.text  # the decoder plugins' tracebacks are held back


# ------------------------------------------------------------------ 13. list flags, overrides
@pytest.mark.parametrize("flag, value, message", [
    ("--seeds", "", "--seeds takes integers separated by commas (e.g. 0,1,2), got '' (nothing)"),
    ("--seeds", "1,1", "--seeds lists 1 more than once"),
    ("--seeds", "1,,2", "(an empty item)"),
    ("--label-fractions", "", "--label-fractions takes numbers separated by commas (e.g. 0.1,0.5,1), got '' (nothing)"),
    ("--label-fractions", "0.5,0.5", "--label-fractions lists 0.5 more than once"),
])
def test_list_flags_that_are_empty_or_repeat(tmp_path, capsys, flag, value, message):
    rc, _, err = cli(capsys, "train", TINY, "--out", tmp_path / "run", flag, value)
    assert rc == 2 and message in err
    assert not (tmp_path / "run").exists()


def test_an_override_without_equals_is_blamed_alone(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", str(TINY), "--out", str(tmp_path / "run"), f"data.path={tmp_path}", "trainer.epochs", "2"])
    err = capsys.readouterr().err
    assert "unrecognized argument(s): trainer.epochs 2; overrides are key=value" in err
    assert "data.path" not in err


# ------------------------------------------------------------------ 15. not a checkpoint
@pytest.mark.parametrize("content", ["garbage", "pickle"])
def test_a_file_that_is_not_a_checkpoint(tmp_path, content):
    import torch

    from radclr.engine.checkpoint import load_checkpoint
    from radclr.errors import RadclrError

    path = tmp_path / "x.pt"
    if content == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
        reason = "not a PyTorch checkpoint file, or a truncated one"
    else:
        torch.save({"obj": ValueError("x")}, path)
        reason = "it holds Python objects other than tensors and plain values; radclr does not load those"
    with pytest.raises(RadclrError) as e:
        load_checkpoint(path)
    assert str(e.value) == f"{path}: not a radclr checkpoint ({reason})"
    torch.save({"w": torch.ones(1)}, path)
    with pytest.raises(RadclrError, match="not a radclr checkpoint \\(a PyTorch file, but not one radclr wrote\\)"):
        load_checkpoint(path)
