"""Issue 13, everyday operation: progress that does not flood a log file, TensorBoard events next to metrics.csv
(when tensorboard is installed), a finding without positives said once at the start with metrics.json and the log
agreeing, and the image store's location (RADCLR_CACHE) told and documented."""

from __future__ import annotations

import io
import json
import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from radclr import progress as P
from radclr.cli.main import main


# --------------------------------------------------------------------------------------------- progress helper
class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_a_bar_on_a_terminal_and_log_lines_in_a_file(monkeypatch):
    from tqdm import tqdm

    monkeypatch.delitem(__import__("sys").modules, "ipykernel", raising=False)
    assert isinstance(P.progress_bar(range(3), file=_Tty()), tqdm)
    assert isinstance(P.progress_bar(range(3), file=io.StringIO()), P.LogProgress)
    off = P.progress_bar(range(3), enabled=False)
    assert isinstance(off, tqdm) and off.disable and list(off) == [0, 1, 2]


def test_log_progress_writes_a_line_per_interval_and_a_closing_line(caplog):
    clock = _Clock()
    bar = P.LogProgress(total=100, desc="decoding", unit="img", interval=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="radclr.progress"):
        for _ in range(100):
            clock.t += 1.0  # one item per second: a line every 30 s
            bar.update()
            bar.set_postfix(loss="0.5000")
        bar.close()
        bar.close()  # closing twice says nothing more
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["decoding: 30/100 img (30%), 1 img/s, 30 s; loss=0.5000",
                     "decoding: 60/100 img (60%), 1 img/s, 60 s; loss=0.5000",
                     "decoding: 90/100 img (90%), 1 img/s, 90 s; loss=0.5000",
                     "decoding: done 100/100 img (100%), 1 img/s, 100 s; loss=0.5000"]
    assert not any("\r" in line for line in lines)


def test_log_progress_of_a_short_task_is_silent_and_iterates(caplog):
    with caplog.at_level(logging.INFO, logger="radclr.progress"):
        assert list(P.LogProgress(range(5), desc="x")) == [0, 1, 2, 3, 4]
    assert caplog.records == []


# --------------------------------------------------------------------------------------------- one training run
class FakeWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter (tensorboard is an optional extra)."""

    instances: list = []

    def __init__(self, log_dir):
        self.log_dir, self.scalars, self.closed = log_dir, [], False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


@pytest.fixture(scope="module")
def zero_positive_run(tmp_path_factory):
    """A 2-epoch tiny run, progress on (stderr is not a terminal under pytest), events to a fake writer, on
    phantoms where 'Infiltration' has no positive image at all."""
    from radclr.data.phantom import write_phantom_dataset
    from radclr.runtime import events

    tmp = tmp_path_factory.mktemp("operation")
    root = tmp / "data"
    write_phantom_dataset(root, n=48, size=64, seed=0)
    labels = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    labels["labels"] = labels["labels"].map(
        lambda s: "|".join(x for x in s.split("|") if x != "Infiltration") or "No Finding")
    labels.to_csv(root / "labels.csv", index=False)
    boxes = pd.read_csv(root / "boxes.csv")
    boxes[boxes["label"] != "Infiltration"].to_csv(root / "boxes.csv", index=False)

    mp = pytest.MonkeyPatch()
    mp.setattr(events, "summary_writer_class", lambda: FakeWriter)
    handler = _Records()
    logging.getLogger("radclr").addHandler(handler)
    FakeWriter.instances.clear()
    err = io.StringIO()
    mp.setattr("sys.stderr", err)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rc = main(["train", str(REPO / "configs" / "tiny" / "seed000_resnet18.yaml"), "--out", str(tmp / "run"),
                       f"data.path={root}", f"data.cache_dir={tmp / 'cache'}", "trainer.epochs=2",
                       "trainer.progress=true"])
    finally:
        mp.undo()
        logging.getLogger("radclr").removeHandler(handler)
    assert rc == 0
    return {"run": tmp / "run", "records": handler.records, "stderr": err.getvalue(), "warnings": caught,
            "writers": list(FakeWriter.instances)}


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append((record.name, record.levelno, record.getMessage()))


def test_progress_to_a_file_is_one_line_per_epoch(zero_positive_run):
    r = zero_positive_run
    assert "\r" not in r["stderr"] and "step/s" not in r["stderr"]  # no tqdm frames
    epochs = [m for _, _, m in r["records"] if m.startswith("stage finetune epoch")]
    assert [m.split()[3] for m in epochs] == ["1/2", "2/2"]


def test_a_finding_without_positives_is_said_once_at_the_start(zero_positive_run):
    msgs = [(lvl, m) for _, lvl, m in zero_positive_run["records"]]
    said = [i for i, (_, m) in enumerate(msgs) if "finding 'Infiltration' has no positive image" in m]
    first_epoch = next(i for i, (_, m) in enumerate(msgs) if m.startswith("stage finetune epoch"))
    assert len(said) == 1 and said[0] < first_epoch and msgs[said[0]][0] == logging.WARNING
    assert "threshold falls back to 0.5" in msgs[said[0]][1]
    assert not [w for w in zero_positive_run["warnings"] if "threshold" in str(w.message)]  # no NaN-threshold warning


def test_metrics_json_and_the_log_agree_on_a_finding_without_positives(zero_positive_run):
    run = zero_positive_run["run"]
    cls = json.loads((run / "metrics.json").read_text())["classification"]
    assert cls["auc"]["Infiltration"] is None and cls["thresholds"]["Infiltration"] == 0.5
    logged = [m for _, _, m in zero_positive_run["records"] if m.startswith("thresholds: ")]
    assert logged == [f"thresholds: {cls['threshold_rule']}"] and "0.5 for Infiltration" in logged[0]
    assert not [m for _, _, m in zero_positive_run["records"] if "threshold is NaN" in m]
    csv = pd.read_csv(run / "metrics.csv")
    assert csv["val_auc_Infiltration"].isna().all()  # NaN in the table, null in the JSON, "undefined" in the log


def test_tensorboard_events_next_to_metrics_csv(zero_positive_run):
    (writer,) = zero_positive_run["writers"]
    run = zero_positive_run["run"]
    assert writer.log_dir == str(run) and writer.closed
    csv = pd.read_csv(run / "metrics.csv")
    epoch_loss = [(v, s) for t, v, s in writer.scalars if t == "finetune/train_loss"]
    assert epoch_loss == [(pytest.approx(v), k + 1) for k, v in enumerate(csv["train_loss"])]
    assert not [t for t, _, _ in writer.scalars if t == "finetune/val_auc_Infiltration"]  # NaN: not plotted
    steps = [s for t, _, s in writer.scalars if t == "finetune/step_loss"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 4


def test_without_tensorboard_nothing_is_written(tmp_path, monkeypatch):
    from radclr.runtime import events

    monkeypatch.setattr(events, "summary_writer_class", lambda: None)
    log = events.EventLog.open(tmp_path)
    log.epoch({"stage": "s", "epoch": 1, "train_loss": 0.5}, 1)
    log.step("s", 1, 0.5)
    log.close()
    assert not log.enabled and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- image store location
def test_image_store_location_is_told_and_radclr_cache_is_honoured(tmp_path, monkeypatch, caplog):
    from data_factories import small_folder

    from radclr.data import load_dataset
    from radclr.training_data.store import build_store, default_cache_dir

    monkeypatch.setenv("RADCLR_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    ds = load_dataset(small_folder(tmp_path / "ds"))
    with caplog.at_level(logging.INFO, logger="radclr"):
        store = build_store(ds, 32, progress=False)
    assert np.asarray(store.images).shape == (6, 32, 32)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("building image store ")]
    assert str(tmp_path / "cache" / f"images-{store.key}.npy") in line and "32 px x 6 images = 6.1 kB" in line
    doc = (REPO / "docs" / "operation.md").read_text()
    assert "RADCLR_CACHE" in doc and "~/.cache/radclr" in doc and "data.cache_dir" in doc
