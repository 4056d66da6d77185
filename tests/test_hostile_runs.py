"""Issue 13, run side: wrong-type or looping configs are refused before a run directory exists; a read-only
output folder or a full disk is one message (no ``*.tmp`` left, earlier checkpoints intact); evaluate, radiomics
extract, predict and report say what is wrong instead of a traceback or a misleading reason."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import REPO
from data_factories import gradient, small_folder, write_bomb_png, write_png
from run_factories import byop_run

from radclr import safe_write
from radclr.engine.checkpoint import load_checkpoint, save_checkpoint
from radclr.engine.config import load_yaml, resolve_config
from radclr.errors import ConfigError, OutputError

from run_factories import cli  # noqa: E402

TINY = REPO / "configs" / "tiny" / "seed000_resnet18.yaml"


# --------------------------------------------------------------------------------------------- config types
@pytest.mark.parametrize("override, message", [
    ("trainer.epochs=abc", "trainer.epochs must be a whole number, got 'abc'"),
    ("trainer.epochs=1.5", "trainer.epochs must be a whole number, got 1.5 (fractions are not truncated)"),
    ("trainer.optimizer.lr=fast", "trainer.optimizer.lr must be a number, got 'fast'"),
    ("trainer.deterministic=maybe", "trainer.deterministic must be auto, true or false, got 'maybe'"),
    ("stages.0.batch_size=big", "stages.0.batch_size must be a whole number, got 'big'"),
    ("trainer.keep_epochs=[1,x]", "trainer.keep_epochs.1 must be a whole number, got 'x'"),
    ("data.split=0.2", "data.split must be a section (mapping), got 0.2"),
    ("stages.0.loss=3", "method 'supervised': option 'loss' must be one of"),
])
def test_wrong_type_overrides_are_refused_before_the_run_directory_exists(tmp_path, capsys, override, message):
    out = tmp_path / "run"
    rc, _, err = cli(capsys, "train", TINY, "--out", out, override)
    assert rc == 2 and message in err
    assert not out.exists()


def test_whole_number_floats_and_other_accepted_types():
    cfg = resolve_config(TINY, ["trainer.epochs=2.0", "evaluation.cam_threshold=0.3", "trainer.amp=off",
                                "data.path=[a,b]", "radiomics.bin_width=25"])
    assert cfg["trainer"]["epochs"] == 2 and isinstance(cfg["trainer"]["epochs"], int)
    assert cfg["evaluation"]["cam_threshold"] == 0.3 and cfg["trainer"]["amp"] is False


def test_base_that_refers_to_itself_or_loops(tmp_path, capsys):
    (tmp_path / "self.yaml").write_text("base: self.yaml\ntrainer: {epochs: 1}\n")
    with pytest.raises(ConfigError, match=r"'base:' chain loops back .*self.yaml -> .*self.yaml"):
        load_yaml(tmp_path / "self.yaml")
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: sub/c.yaml\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("base: ../a.yaml\n")
    rc, _, err = cli(capsys, "train", tmp_path / "a.yaml", "--out", tmp_path / "run")
    assert rc == 2 and "a.yaml -> " in err and "b.yaml -> " in err and "c.yaml -> " in err
    assert not (tmp_path / "run").exists()


def test_label_fractions_that_are_not_numbers(tmp_path, capsys):
    rc, _, err = cli(capsys, "train", TINY, "--out", tmp_path / "run", "--label-fractions", "0.1,half")
    assert rc == 2 and "--label-fractions takes numbers" in err


# --------------------------------------------------------------------------------------------- read-only / disk full
def _refuse_writes(monkeypatch, code=errno.EROFS):
    def refuse(path, *a, **k):
        raise OSError(code, "simulated", str(path))

    monkeypatch.setattr(safe_write, "open", refuse, raising=False)  # the probe file of writable_dir


def test_read_only_run_directory_is_said_before_any_work(tmp_path, capsys, monkeypatch):
    _refuse_writes(monkeypatch)
    rc, _, err = cli(capsys, "train", TINY, "--out", tmp_path / "run", f"data.cache_dir={tmp_path / 'cache'}")
    assert rc == 2 and f"{tmp_path / 'run'}: cannot write to the run directory: read-only file system" in err
    assert not (tmp_path / "cache").exists()  # nothing was prepared


def test_permission_denied_names_the_folder(tmp_path):
    # what a user without write permission sees (root bypasses chmod, so the OS answer is simulated)
    with pytest.MonkeyPatch.context() as mp:
        _refuse_writes(mp, errno.EACCES)
        with pytest.raises(OutputError, match="cannot write to the results folder: permission denied"):
            safe_write.writable_dir(tmp_path / "x", "results folder")


def test_output_path_through_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    rc, _, err = cli(capsys, "train", TINY, "--out", tmp_path / "file" / "run")
    assert rc == 2 and "cannot write to the run directory: a part of the path is a file, not a folder" in err


def _failing_save(monkeypatch, fail_at: int):
    """torch.save failing as it does on a full disk (seen on a full tmpfs): the file's write raises ENOSPC and
    torch's zip writer, closing, masks it with its own RuntimeError."""
    real, calls = torch.save, []

    def save(obj, f, *a, **k):
        calls.append(1)
        if len(calls) == fail_at:
            try:
                f.write(b"half a checkpoint")
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)


def test_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    _failing_save(monkeypatch, 1)
    with pytest.raises(OutputError) as e:
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert str(e.value) == f"{path}: cannot write the checkpoint: no space left on the device (the previous file is unchanged)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_full_disk_during_training(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _failing_save(monkeypatch, 3)  # epoch 1 writes last.pt and best.pt; epoch 2's last.pt hits the full disk
    rc, _, err = cli(capsys, "train", TINY, "--out", out, "trainer.epochs=2", "--no-eval",
                     f"data.cache_dir={tmp_path / 'cache'}")
    assert rc == 2 and f"{out / 'checkpoints' / 'last.pt'}: cannot write the checkpoint: no space left" in err
    assert not list(out.rglob("*.tmp"))
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 1  # resumable from epoch 1
    assert load_checkpoint(out / "checkpoints" / "best.pt")["epoch"] == 1


def test_full_disk_for_the_image_store_is_said_before_decoding(tmp_path, monkeypatch):
    from radclr.data import load_dataset
    from radclr.training_data.store import build_store

    def no_room(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.posix_fallocate", no_room)
    ds = load_dataset(small_folder(tmp_path / "ds"))
    with pytest.raises(OutputError, match=r"images-[0-9a-f]+\.npy: cannot write the image store .*no space left"):
        build_store(ds, 32, tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").glob("images-*"))


def test_atomic_path_removes_the_tmp_on_any_failure(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("old")
    with pytest.raises(KeyError):
        with safe_write.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyError("bug")
    assert target.read_text() == "old" and not (tmp_path / "m.json.tmp").exists()


# --------------------------------------------------------------------------------------------- radiomics --out
def test_radiomics_out_that_is_a_folder_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    import radclr.radiomics.table as table

    monkeypatch.setattr(table, "extract_table", lambda *a, **k: pytest.fail("extracted before checking --out"))
    (tmp_path / "outdir").mkdir()
    rc, _, err = cli(capsys, "radiomics", "extract", small_folder(tmp_path / "ds"), "--out", tmp_path / "outdir")
    assert rc == 2 and "outdir: --out is a folder; give the CSV file to write" in err


# --------------------------------------------------------------------------------------------- finished runs
@pytest.fixture(scope="module")
def run_copy(tmp_path_factory):
    """A private copy of the session's tiny BYOP run (tests here may break it)."""
    dst = tmp_path_factory.mktemp("hostile") / "run"
    shutil.copytree(byop_run(tmp_path_factory), dst)
    return dst


def test_evaluate_on_another_dataset_without_boxes(run_copy, tmp_path, capsys):
    from radclr.data.phantom import write_phantom_dataset

    other = tmp_path / "other"
    write_phantom_dataset(other, n=12, size=64, seed=5)
    (other / "boxes.csv").unlink()
    rc, out, _ = cli(capsys, "evaluate", run_copy, "--data", other, "--n-boot", "5", "--no-progress")
    summary = json.loads(out)
    assert rc == 0 and summary["split"] == "all" and "auc" in summary
    assert summary["localization"].startswith("no evaluated image has a ground-truth box")
    saved = json.loads((run_copy / "evaluations" / "other-best-all" / "metrics.json").read_text())
    assert saved["localization"]["scored"] is False


def test_predict_warns_on_unusable_images(run_copy, tmp_path, capsys):
    tiny = write_png(tmp_path / "tiny.png", np.array([[200]], dtype=np.uint8))
    flat = write_png(tmp_path / "flat.png", np.full((64, 64), 90, dtype=np.uint8))
    rc, out, _ = cli(capsys, "predict", run_copy, tiny, flat, "--no-reference", "--out", tmp_path / "pred",
                     "--no-progress")
    assert rc == 0 and "WARNING: very small image (1 x 1 px" in out and "WARNING: constant image" in out
    res = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert [len(r["warnings"]) for r in res] == [2, 1]  # 1x1 is also constant


def test_predict_on_a_decompression_bomb(run_copy, tmp_path, capsys):
    rc, _, err = cli(capsys, "predict", run_copy, write_bomb_png(tmp_path / "bomb.png"), "--no-reference",
                     "--out", tmp_path / "pred", "--no-progress")
    assert rc == 2 and "bomb.png: the header claims an enormous image" in err


def test_report_without_checkpoints_names_them_not_the_data(run_copy, tmp_path, caplog):
    from radclr.report import write_report

    run = tmp_path / "run"
    shutil.copytree(run_copy, run)
    shutil.rmtree(run / "checkpoints")
    text = write_report(run).read_text(encoding="utf-8")
    reasons = re.findall(r'<p class="reason">(.*?)</p>', text)
    model = [r for r in reasons if "model is not available (checkpoint best.pt)" in r]
    assert len(model) == 2 and all("no checkpoint &#x27;best.pt&#x27;" in r for r in model)  # t-SNE, radiomics
    assert not [r for r in reasons if "data" in r and "not available" in r]  # not blamed on the data
    assert "has no checkpoints" in caplog.text


# ============================================================================================= issue 20
# ------------------------------------------------------------------ 1. one process owns a run directory
_HOLD = """
import sys, time
from radclr.runs.lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def _hold_lock(run_dir):
    import os
    import subprocess
    import sys

    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_run_directory_in_use_by_another_process_is_refused_and_a_stale_lock_reported(tmp_path, capsys,
                                                                                        caplog):
    from radclr.runs.lock import LOCK_NAME, lock_owner, run_lock

    out = tmp_path / "run"
    proc = _hold_lock(out)
    try:
        assert lock_owner(out)["pid"] == proc.pid
        rc, _, err = cli(capsys, "train", TINY, "--out", out, f"data.cache_dir={tmp_path / 'cache'}")
        assert rc == 2 and f"{out} is in use by process {proc.pid}" in err
        for command in ("evaluate", "report"):
            rc, _, err = cli(capsys, command, out)
            assert rc == 2 and f"in use by process {proc.pid}" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing of the refused runs was written
    finally:
        proc.kill()  # SIGKILL: the lock file stays, the flock goes with the process
        proc.wait()
    assert (out / LOCK_NAME).exists() and lock_owner(out) is None
    with caplog.at_level(logging.WARNING):
        with run_lock(out):
            assert lock_owner(out) is None or lock_owner(out)["pid"] == os.getpid()
    assert f"run.lock: stale lock of process {proc.pid}" in caplog.text and "taking the run over" in caplog.text
    assert not (out / LOCK_NAME).exists()


def test_the_lock_is_released_when_training_fails(tmp_path):
    from radclr.runs.lock import LOCK_NAME, RunLocked, run_lock

    with pytest.raises(KeyError):
        with run_lock(tmp_path):
            with pytest.raises(RunLocked, match="is in use by process"):  # a second owner, even in one process
                with run_lock(tmp_path):
                    pass
            raise KeyError("bug")
    assert not (tmp_path / LOCK_NAME).exists()


# ------------------------------------------------------------------ 2-3. finished runs and their split
@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A tiny run trained on a phantom *folder* dataset (so tests can change the data afterwards)."""
    from radclr.data.phantom import write_phantom_dataset
    from radclr.runs.train import train

    base = tmp_path_factory.mktemp("folder-run")
    data = base / "data"
    write_phantom_dataset(data, n=24, size=48, seed=3)
    run = base / "run"
    train(TINY, run, [f"data.path={data}", "data.image_size=32", f"data.cache_dir={base / 'cache'}",
                      "evaluation.n_boot=5", "data.split.test=0.3"], progress=False)
    return run, data


def _snapshot(run):
    return {p.relative_to(run).as_posix(): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}


def test_resume_of_a_finished_run_changes_nothing(folder_run, capsys):
    run, _ = folder_run
    before = _snapshot(run)
    rc, out, err = cli(capsys, "train", "--resume", run, "evaluation.n_boot=3")
    assert rc == 0 and f"{run}: this run has finished" in out and "nothing changed" in out
    assert _snapshot(run) == before


def test_resume_with_another_out_is_refused(folder_run, tmp_path, capsys):
    run, _ = folder_run
    rc, _, err = cli(capsys, "train", "--resume", run, "--out", tmp_path / "other")
    assert rc == 2 and f"--out {tmp_path / 'other'} names another one" in err
    assert not (tmp_path / "other").exists()
    rc, _, err = cli(capsys, "train", "--resume", run, "--folds", "3")
    assert rc == 2 and "--folds does not apply to --resume" in err


def test_resume_of_a_trained_but_unevaluated_run_only_evaluates(folder_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(folder_run[0], run)
    (run / "metrics.json").unlink()
    last = (run / "checkpoints" / "last.pt").stat().st_mtime_ns
    rc, _, _ = cli(capsys, "train", "--resume", run)
    assert rc == 0 and (run / "metrics.json").exists()
    assert (run / "checkpoints" / "last.pt").stat().st_mtime_ns == last  # not trained again


@pytest.mark.parametrize("change", ["delete", "add"])
def test_data_changed_after_training_is_named_and_nothing_is_scored(folder_run, tmp_path, capsys, caplog, change):
    import pandas as pd

    src_run, src_data = folder_run
    run, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(src_run, run)
    shutil.copytree(src_data, data)
    cfg = (run / "config.yaml").read_text().replace(str(src_data), str(data))
    (run / "config.yaml").write_text(cfg)
    labels = pd.read_csv(data / "labels.csv")
    split = pd.read_csv(run / "splits.csv")
    test_images = list(split.loc[split["split"] == "test", "image_id"])
    if change == "delete":
        labels = labels[labels["image"] != test_images[0]]
        expected = f"1 image(s) of the run's split are no longer in the dataset {data} ({test_images[0]})"
    else:
        (data / "images" / "new.png").write_bytes((data / "images" / labels["image"].iloc[0]).read_bytes())
        labels = pd.concat([labels, pd.DataFrame([{**labels.iloc[0].to_dict(), "image": "new.png",
                                                   "patient_id": "new"}])])
        expected = f"1 image(s) of the dataset {data} are not in the run's split (new.png)"
    labels.to_csv(data / "labels.csv", index=False)
    before = _snapshot(run)
    rc, _, err = cli(capsys, "evaluate", run, "--no-progress")
    assert rc == 2 and f"{run / 'splits.csv'}: the data changed since this run was trained" in err and expected in err
    # predict needs the split only for its reference population: it says why there is none and predicts
    write_png(tmp_path / "x.png", gradient(40, 40))
    rc, out, _ = cli(capsys, "predict", run, tmp_path / "x.png", "--out", tmp_path / "pred", "--no-progress")
    assert rc == 0 and "no reference population" in caplog.text and expected in caplog.text
    assert _snapshot(run) == before  # metrics.json not replaced


# ------------------------------------------------------------------ 7. config.yaml edited after training
def test_an_edited_config_names_the_part_and_the_setting(folder_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(folder_run[0], run)
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text().replace("encoder: resnet18", "encoder: resnet34"))
    rc, _, err = cli(capsys, "evaluate", run, "--no-progress")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "best.pt: does not fit the model" in err and "part(s) encoder (" in err and "missing" in err
    assert "model.encoder: 'resnet34' in config.yaml, 'resnet18' in the checkpoint" in err
    rc, _, err = cli(capsys, "train", "--resume", run)
    assert rc == 2 and "--resume: " in err and "model.encoder: 'resnet34' in config.yaml, 'resnet18'" in err


# ------------------------------------------------------------------ 14. nothing to score
def test_evaluate_on_data_sharing_no_finding_says_why(folder_run, tmp_path, capsys):
    from data_factories import make_folder

    other = make_folder(tmp_path / "other", [(f"o{k}.png", f"q{k}", "Cardiomegaly" if k % 2 else "No Finding")
                                             for k in range(6)])
    rc, _, err = cli(capsys, "evaluate", folder_run[0], "--data", other, "--no-progress")
    assert rc == 2 and f"{other}: shares no finding with the run" in err and "nothing to score" in err
    one = make_folder(tmp_path / "one", [(f"o{k}.png", f"q{k}", "Mass") for k in range(6)])
    rc, _, err = cli(capsys, "evaluate", folder_run[0], "--linear-eval", "--data", one, "--folds", "2",
                     "--no-progress")
    assert rc == 2 and f"{one}: no finding has both positive and negative labelled images (Mass: 6 positive, " \
                       "0 negative): nothing to score" in err


# ------------------------------------------------------------------ 16. a killed run
def test_report_on_a_killed_run_writes_a_report_saying_the_checkpoint_is_missing(folder_run, tmp_path, capsys,
                                                                                caplog):
    run = tmp_path / "run"
    shutil.copytree(folder_run[0], run)
    shutil.rmtree(run / "checkpoints")
    for name in ("metrics.json", "metrics.csv", "thresholds.json"):
        (run / name).unlink(missing_ok=True)
    rc, out, err = cli(capsys, "report", run, "--no-progress")
    assert rc == 0, err
    text = (run / "report.html").read_text(encoding="utf-8")
    reasons = re.findall(r'<p class="reason">(.*?)</p>', text)
    assert any("model is not available (checkpoint best.pt)" in r and "has this run trained?" in r for r in reasons)
    assert "has no checkpoints" in err or "has no checkpoints" in caplog.text


# ------------------------------------------------------------------ 17. an image store that cannot be allocated
def test_an_image_store_that_cannot_be_allocated_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    from radclr.data import load_dataset
    from radclr.training_data.store import build_store

    def no_memory(path, mode, dtype, shape):
        with open(path, "wb") as f:  # what numpy does first: a sparse file of the full size ...
            f.truncate(int(np.prod(shape)) + 128)
        raise OSError(errno.ENOMEM, "Cannot allocate memory")  # ... then mmap fails

    monkeypatch.setattr(np.lib.format, "open_memmap", no_memory)
    ds = load_dataset(small_folder(tmp_path / "ds"))
    with pytest.raises(OutputError, match=r"images-[0-9a-f]+\.npy: cannot allocate the image store \(6 item\(s\) of "
                                          r"\[32, 32\], 0.0 MiB\): Cannot allocate memory"):
        build_store(ds, 32, tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").glob("images-*"))


# ------------------------------------------------------------------ 18. a bootstrap interval and its estimate
# the test split of a 48-image phantom run (10 images, 8 patients; Mass and Nodule have one positive patient
# each) scored with 20 resamples, as the tiny configs do: only 6 resamples hold both rare positives
_Y = [[0, 0, 1, 0], [1, 0, 0, 1], [0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1],
      [0, 0, 1, 0], [0, 0, 0, 0]]
_S = [[0.852, 0.708, 0.967, 0.685], [0.804, 0.831, 0.899, 0.959], [0.456, 0.856, 0.609, 0.964],
      [0.79, 0.975, 0.888, 0.683], [0.797, 0.449, 0.587, 0.776], [0.798, 0.901, 0.893, 0.947],
      [0.402, 0.18, 0.324, 0.328], [0.924, 0.776, 0.808, 0.879], [0.404, 0.63, 0.937, 0.912],
      [0.859, 0.75, 0.805, 0.42]]
_PATIENTS = [0, 1, 2, 2, 3, 3, 4, 5, 6, 7]
_FINDINGS = ["Mass", "Nodule", "Effusion", "Infiltration"]


def _report(y=_Y, s=_S, patients=_PATIENTS, n_boot=20, seed=98):
    from radclr.evaluation.bootstrap import classification_report

    return classification_report(np.asarray(y, float), np.asarray(s, float), _FINDINGS[:len(y[0])],
                                 patient_ids=patients, thresholds={f: 0.5 for f in _FINDINGS}, n_boot=n_boot,
                                 seed=seed)


def test_a_mean_auc_interval_from_a_selected_few_resamples_is_withheld(monkeypatch):
    import radclr.evaluation.bootstrap as B

    monkeypatch.setattr(B, "MIN_VALID_FRACTION", 0.0)  # the former rule: any valid resample makes an interval
    old = _report()["mean"]["auc"]
    assert old["n_valid_boot"] == 6 and old["value"] == pytest.approx(0.90625)
    assert old["ci_low"] > old["value"]  # the issue: [0.908, 0.946] does not contain 0.906
    monkeypatch.undo()
    new = _report()["mean"]["auc"]
    assert new["value"] == old["value"] and new["ci_low"] is None and new["ci_high"] is None
    assert new["ci_note"].startswith("no interval: only 6 of 20 resamples define it")
    per = _report()["per_finding"]
    assert all(v["auc"]["ci_low"] <= v["auc"]["value"] <= v["auc"]["ci_high"]
               for v in per.values() if v["auc"]["ci_low"] is not None)


def test_every_reported_interval_contains_its_estimate_on_phantom_like_test_splits():
    rng = np.random.default_rng(2)
    checked = 0
    for trial in range(40):
        patients, p, k = [], -1, 2
        for _ in range(10):  # about one patient in five has two images, as in the phantoms
            if not (k == 1 and rng.random() < 0.2):
                p, k = p + 1, 0
            k += 1
            patients.append(p)
        y = np.zeros((10, 4))
        for i in range(10):
            if rng.random() > 0.3:
                y[i, rng.integers(4)] = 1
                if rng.random() < 0.25:
                    y[i, rng.integers(4)] = 1
        sep = rng.uniform(0.5, 2.5)
        s = 1 / (1 + np.exp(-(sep * y + rng.normal(0, 1, (10, 4)) + 0.5 * sep * (y.sum(1, keepdims=True) - y))))
        rep = _report(y.tolist(), s.tolist(), patients, n_boot=20, seed=trial)
        for entry in [rep["mean"]] + list(rep["per_finding"].values()):
            for m in ("auc", "sensitivity", "specificity", "f1", "accuracy"):
                e = entry[m]
                if e["value"] is not None and e["ci_low"] is not None:
                    assert e["ci_low"] - 1e-12 <= e["value"] <= e["ci_high"] + 1e-12, (trial, m, e)
                    checked += 1
    assert checked > 500


# ------------------------------------------------------------------ 10 (predict), 4 (--reference-max-images)
def test_predict_names_the_file_with_nan_values_among_several(folder_run, tmp_path, capsys):
    from data_factories import write_sitk

    good = write_png(tmp_path / "good.png", gradient(48, 48))
    a = gradient(48, 48).astype(np.float32)
    a[5, 5] = np.nan
    bad = write_sitk(tmp_path / "bad.nii.gz", a)
    rc, _, err = cli(capsys, "predict", folder_run[0], good, bad, "--no-reference", "--out", tmp_path / "p",
                     "--no-progress")
    assert rc == 2 and f"{bad}: image contains 1 NaN or infinite value(s)" in err


def test_reference_max_images_is_honoured_when_a_reference_exists(folder_run, tmp_path, capsys):
    from radclr.predict import load_radiomics_reference

    run = tmp_path / "run"
    shutil.copytree(folder_run[0], run)
    image = write_png(tmp_path / "x.png", gradient(48, 48))
    for n, expected in ((2000, None), (3, 3)):
        rc, _, err = cli(capsys, "predict", run, image, "--reference-max-images", n, "--out", tmp_path / "p",
                         "--no-progress")
        ref = load_radiomics_reference(run)
        assert rc == 0 and ref is not None, err
        assert ref.meta["n"] == (expected or ref.meta["n_train"])
