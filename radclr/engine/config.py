"""Run configuration: YAML files + dotted ``key=value`` overrides, resolved against defaults.

A config describes one experiment: the data, the radiomics view, the model, and an ordered list of *stages*
(e.g. contrastive pretraining, then fine-tuning). Stage fields fall back to the ``trainer`` section, so
``trainer.epochs=2`` shortens every stage and ``stages.1.epochs=3`` only the second one.

A config may extend another (``base: FILE``, merged section by section). A stage *list* replaces the base's
stages; a stage *mapping* ``stages: {NAME: {key: value, ...}}`` instead updates the base's stages by name and
keeps everything else -- so ablation configs state only what they change (``configs/seed001/``: Table 3's four
rows differ in ``loss`` and ``byop`` alone).

Overrides are parsed with YAML (``lr=1e-3`` is a float, ``classes=[glcm,glrlm]`` a list, ``weights=null``
None). An override of an unknown top-level key or of a key missing from a section is refused (typos must not
silently do nothing); ``+key=value`` adds a new key deliberately.

Types are checked against :data:`DEFAULTS` (:func:`check_types`, part of :func:`resolve_config`, so before any
run directory exists): a whole number where the default is one (``trainer.epochs=1.5`` or ``=abc`` is refused,
``2.0`` is read as 2), a number where the default is a float, true/false for flags, text, lists and sections where
the default is one; keys whose default is ``null`` take anything. Stage keys are checked like the ``trainer``
keys they override, and each stage's method options by the method's own options class. A ``base:`` chain that
comes back to a file already in it is refused, naming the chain. Values read only after training are checked
here too: ``evaluation.cam_layer``, ``evaluation.cam_threshold`` and each stage's ``best_checkpoint.metric`` (a
validation column that stage writes to ``metrics.csv``, :func:`validation_columns`).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import yaml

from radclr.cam.options import LAYERS, CamOptions
from radclr.errors import ConfigError
from radclr.methods import method_class
from radclr.ranges import CONFIG_RANGES, CONFIG_RANGES_IF_NUMBER, POSITIVE_INT, check_range
from radclr.training_data.volumes import volume_settings
from radclr.yamlfile import read_yaml

log = logging.getLogger("radclr.config")

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "data": {
        "path": "demo",  # "demo" = embedded Kermany sample; "phantom" = synthetic; or a dataset folder
        "format": None,  # auto-detected
        "findings": None,  # None = every finding of the dataset
        # multilabel: independent findings (sigmoid + BCE, thresholds); multiclass: one class per image (softmax +
        # cross-entropy, arg-max; seed 004's 4-class kidney task). The findings are then the classes.
        "task": "multilabel",
        "image_size": 224,
        "split": {"val": 0.1, "test": 0.2, "seed": 0, "file": None, "protocol": "random"},
        "label_fraction": 1.0,  # fraction of training labels kept (whole patients; the rest unlabelled)
        "box_fraction": 1.0,  # keep ground-truth boxes for this fraction of patients (the rest: unannotated)
        "pretext_fraction": 1.0,  # fraction of training images the label-free stages see (seed 003: 1/10/100 %)
        "intensity": "auto",  # how files map to the 0..255 store: auto | minmax | none
        "cache_dir": None,  # default: $RADCLR_CACHE, else <user cache>/radclr (docs/operation.md)
        "store_dir": None,  # where the image store lives (a large local disk); default: the cache folder
        "jobs": 1,  # processes decoding the image store when a run builds it (`radclr data prepare`: every core)
        "follow_links": False,  # read image files that symlinks lead to outside the dataset root (docs/data.md)
        "phantom": {"n": 240, "size": 128, "seed": 0},
        # 3-D mode (seed 004): {n_slices: 10, size: 64, window: null | [lo, hi], margin: 0.0, jobs: 1}; null = 2-D
        "volume": None,
    },
    "radiomics": {
        "region": "box",  # box (ground truth; whole image where none) | whole_image | roi_crop | cam
        "bin_width": 25.0,
        "bin_count": None,
        "classes": None,  # None = all 7 default 2-D classes (102 features)
        "params": None,  # a PyRadiomics parameter YAML instead of the keys above
        "engine": "torch",
        "refresh_every": 1,  # BYOP: recompute CAM boxes + radiomics every N steps
    },
    "model": {
        "encoder": "resnet18",
        "encoder_options": {},  # e.g. {no_max_pool: true, width: 0.5} (see radclr.networks.build_image_encoder)
        "weights": None,  # user-supplied encoder weights file (nothing is ever downloaded)
        "init_from": None,  # a radclr checkpoint whose parts initialise this run (e.g. a pretraining run)
        # parts to take from init_from: null = every part whose layers and shapes fit (the rest reported, e.g. a
        # classifier for other findings); or a list, e.g. [encoder, image_proj] (each must fit)
        "init_parts": None,
        "proj_dim": 128,
        "proj_hidden": 512,
        "radiomics_hidden": [256, 256],
        "radiomics_dim": 128,
    },
    "trainer": {
        "epochs": 10,
        "batch_size": 32,
        "eval_batch_size": 64,
        # DataLoader worker processes; auto = 0 on the CPU, on CUDA the cores minus 2 (per GPU of the node),
        # persistent and prefetching (radclr.training_data.loader)
        "num_workers": "auto",
        # read the step losses (divergence check, progress, TensorBoard) and the stop flag every N steps; auto = 1 on
        # the CPU (free there), 25 on CUDA (each read waits for the GPU)
        "sync_every_steps": "auto",
        "device": "auto",
        "amp": "auto",
        # auto = deterministic kernels on the CPU (bit-exact resume), the fastest on CUDA (cudnn.benchmark);
        # true / false forces either (radclr.runtime.device.resolve_determinism)
        "deterministic": "auto",
        "precise_bn_batches": 20,  # re-estimate encoder BatchNorm statistics after each epoch (0 = off)
        "checkpoint_every_steps": 0,  # 0 = at every epoch end only
        "keep_epochs": [],  # also keep checkpoints/<stage>-epoch<k>.pt (e.g. t-SNE across training, seed 003 Fig. 3)
        "progress": True,
        "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "momentum": 0.9},
        "schedule": {"name": "none", "step_size": 5, "gamma": 0.1, "warmup_epochs": 0},
        "augment": {"enabled": True},
        # stop a stage when `monitor` (a metrics.csv column of the stage) has not improved for `patience` epochs
        # (0 = off; seed 000: "early stopped if the loss did not decrease")
        "early_stopping": {"patience": 0, "monitor": "train_loss", "mode": "min", "min_delta": 0.0},
        "gather_negatives": True,  # DDP: contrast against negatives from every rank
        # DDP: how long a rank waits in a collective (e.g. for rank 0 preparing data) before the run fails
        "dist_timeout_minutes": 120,
        # what best.pt is chosen by: {metric: a validation column of metrics.csv, mode: min | max}; null metric =
        # the method's own (e.g. val_auc_mean, max -- which saturates at 1.0 on easy data: a loss picks later,
        # better-trained epochs there)
        "best_checkpoint": {"metric": None, "mode": None},
    },
    "stages": [{"name": "train", "method": "supervised"}],
    "evaluation": {
        "n_boot": 1000,
        "threshold_rule": "youden",
        "linear_eval": False,
        "linear_eval_folds": 0,  # > 0: also seed 003's patient-wise stratified k-fold CV of the linear evaluation
        "classical_radiomics": False,  # seed 004 baseline: radiomics -> feature selection -> classifier
        "localization": True,
        # auto = fit on annotated train/val images (>= 5 cases), else the method's value; auto_per_finding = also
        # one threshold per finding with >= 5 such cases; a number; or "method" (the method's own)
        "cam_threshold": "auto",
        "cam_layer": "method",  # the Grad-CAM layer scored: the method's own ("method"), "last" or "layer3"
    },
}

# keys a stage may set (anything else in a stage is a method option)
STAGE_TRAINER_KEYS = set(DEFAULTS["trainer"].keys())


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_yaml(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}" + (f" (base of {_chain[-1]})" if _chain else ""))
    real = path.resolve()
    if real in _chain:
        loop = " -> ".join(str(p) for p in (*_chain[_chain.index(real):], real))
        raise ConfigError(f"{path}: 'base:' chain loops back to a file already in it: {loop}")
    data = read_yaml(path)  # a key given twice, a binary file (a checkpoint): ConfigError naming the file
    if data is None:
        raise ConfigError(f"{path}: the config file is empty (an empty file would silently train every default "
                          f"for a long time; start from a file in configs/)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    base = data.pop("base", None)  # configs may extend another config (path relative to this file)
    if base:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base must be a file name, got {base!r}")
        parent = load_yaml(path.parent / base, (*_chain, real))
        updates = data.pop("stages", None) if isinstance(data.get("stages"), dict) else None
        data = deep_merge(parent, data)
        if updates is not None:
            data["stages"] = _update_stages(parent.get("stages"), updates, path)
    elif isinstance(data.get("stages"), dict):
        raise ConfigError(f"{path}: a stages mapping (stage name -> keys) updates the stages of a base config, "
                          "but this file has no base:")
    return data


def _update_stages(stages, updates: dict, path: Path) -> list:
    """The base's ``stages`` list with ``updates`` (stage name -> keys) merged into the stages of those names."""
    if not isinstance(stages, list):
        raise ConfigError(f"{path}: a stages mapping needs a base config with a stages list")
    out = copy.deepcopy(stages)
    names = [st.get("name", f"stage{i}") if isinstance(st, dict) else None for i, st in enumerate(out)]
    for name, keys in updates.items():
        if name not in names:
            raise ConfigError(f"{path}: stages.{name}: the base config has no stage named {name!r} "
                              f"(its stages: {names})")
        if not isinstance(keys, dict):
            raise ConfigError(f"{path}: stages.{name} must be a mapping of keys, got {keys!r}")
        i = names.index(name)
        out[i] = deep_merge(out[i], keys)
    return out


def _parse_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    return value


def apply_override(cfg: dict, assignment: str) -> None:
    """Apply one ``a.b.c=value`` (or ``+a.b.c=value`` to create) in place."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} is not of the form key=value (no spaces around '=', e.g. "
                          f"{assignment.strip()}=VALUE)")
    key, _, raw = assignment.partition("=")
    create = key.startswith("+")
    key = key.lstrip("+").strip()
    parts = key.split(".")
    node: Any = cfg
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            try:
                idx = int(part)
                node[idx]
            except (ValueError, IndexError):
                raise ConfigError(f"override {key}: {where} is not a valid index of a list of {len(node)}") from None
            if last:
                node[idx] = _parse_value(raw)
            else:
                node = node[idx]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: {'.'.join(parts[:i])} is not a section")
        if part not in node:
            # stage entries may take any trainer key or method option; elsewhere unknown keys are typos
            in_stage = len(parts) >= 3 and parts[0] == "stages"
            if not (create or in_stage):
                known = ", ".join(sorted(node.keys()))
                raise ConfigError(f"override {key}: unknown key {where!r} (known here: {known}); use +{key}=... to add")
            if not last:
                node[part] = {}
        if last:
            node[part] = _parse_value(raw)
        else:
            node = node[part]


def resolve_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), base: dict | None = None) -> dict:
    """Load ``path`` (or ``base``), merge onto :data:`DEFAULTS`, apply overrides, validate."""
    user = copy.deepcopy(base) if base is not None else (load_yaml(path) if path else {})
    cfg = deep_merge(DEFAULTS, user)
    for ov in overrides:
        apply_override(cfg, ov)
    validate_config(cfg)
    return cfg


def stage_settings(cfg: dict, index: int) -> dict:
    """Effective settings of stage ``index``: trainer defaults overlaid with the stage's own keys."""
    stage = cfg["stages"][index]
    eff = deep_merge(cfg["trainer"], {k: v for k, v in stage.items() if k in STAGE_TRAINER_KEYS})
    eff["name"] = stage.get("name", f"stage{index}")
    eff["method"] = stage["method"]
    eff["options"] = {k: v for k, v in stage.items() if k not in STAGE_TRAINER_KEYS and k not in ("name", "method")}
    return eff


def needs_fixed_radiomics(cfg: dict) -> bool:
    """Whether a run of ``cfg`` reads the fixed-region radiomics (a method that needs them, or ``region: cam``)."""
    return any(method_class(st["method"]).needs_radiomics for st in cfg["stages"]) or \
        cfg["radiomics"]["region"] == "cam"


def fixed_radiomics_rows(cfg: dict) -> str:
    """``"boxed"`` when every stage that reads fixed radiomics is BYOP with its loop on (``byop: true``): the
    radiomics of unannotated images then come from their Grad-CAM boxes, so their whole-image rows are not
    computed (:mod:`radclr.training_data.fixed_radiomics`); else ``"all"`` -- also when the evaluation's classical
    radiomics baseline (``evaluation.classical_radiomics``) reads every row of the run's prepared data."""
    users = [stage_settings(cfg, i) for i, st in enumerate(cfg["stages"]) if method_class(st["method"]).needs_radiomics]
    if not users or cfg["radiomics"]["region"] == "whole_image" or cfg["evaluation"].get("classical_radiomics"):
        return "all"
    default = getattr(method_class("byop").Options, "byop", False)
    return "boxed" if all(st["method"] == "byop" and bool(st["options"].get("byop", default)) for st in users) else "all"


# keys earlier versions wrote into run configs that no longer do anything: dropped (with a note) so old run
# directories still load, refused nowhere else
RETIRED_KEYS = {"trainer": ("log_every_steps",), "evaluation": ("splits",)}


def validate_config(cfg: dict) -> None:
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown top-level config key(s): {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    for section in ("data", "radiomics", "model", "trainer", "evaluation"):
        if not isinstance(cfg[section], dict):
            raise ConfigError(f"'{section}' must be a section (mapping), got {cfg[section]!r}")
    for section, keys in RETIRED_KEYS.items():
        for key in keys:
            if isinstance(cfg.get(section), dict) and key in cfg[section]:
                cfg[section].pop(key)
                log.debug("config: %s.%s is retired (it had no effect) and is ignored", section, key)
    for section in ("data", "radiomics", "model", "trainer", "evaluation"):
        extra = set(cfg[section]) - set(DEFAULTS[section])
        if extra:
            raise ConfigError(f"unknown key(s) in '{section}': {sorted(extra)}; known: {sorted(DEFAULTS[section])}")
    stages = cfg["stages"]
    if not isinstance(stages, list) or not stages:
        raise ConfigError("'stages' must be a non-empty list")
    names = []
    for i, st in enumerate(stages):
        if not isinstance(st, dict) or "method" not in st:
            raise ConfigError(f"stages.{i}: each stage needs a 'method'")
        names.append(st.get("name", f"stage{i}"))
    if len(set(names)) != len(names):
        raise ConfigError(f"stage names must be unique, got {names}")
    frac = cfg["data"]["label_fraction"]
    if not (isinstance(frac, (int, float)) and 0 < frac <= 1):
        raise ConfigError(f"data.label_fraction must be in (0, 1], got {frac!r}")
    if cfg["trainer"]["deterministic"] not in ("auto", None, True, False):
        raise ConfigError(f"trainer.deterministic must be auto, true or false, got {cfg['trainer']['deterministic']!r}")
    if cfg["data"]["task"] not in ("multilabel", "multiclass"):
        raise ConfigError(f"data.task must be multilabel|multiclass, got {cfg['data']['task']!r}")
    if cfg["radiomics"]["region"] not in ("box", "whole_image", "roi_crop", "cam"):
        raise ConfigError(f"radiomics.region must be box|whole_image|roi_crop|cam, got {cfg['radiomics']['region']!r}")
    check_types(cfg)
    check_ranges(cfg)
    volume_settings(cfg)  # data.volume: ConfigError naming the key
    for i in range(len(stages)):
        eff = stage_settings(cfg, i)
        if int(eff["epochs"]) < 0 or int(eff["batch_size"]) < 1:
            raise ConfigError(f"stages.{i}: epochs must be >= 0 and batch_size >= 1")
        chosen = eff.get("best_checkpoint") or {}
        if not isinstance(chosen, dict):
            raise ConfigError(f"stages.{i}.best_checkpoint must be a section {{metric, mode}}, got {chosen!r}")
        if chosen.get("metric") and str(chosen.get("mode") or "min") not in ("min", "max"):
            raise ConfigError(f"stages.{i}.best_checkpoint.mode must be min or max, got {chosen.get('mode')!r}")
        if chosen.get("metric"):
            _check_best_metric(cfg, i, str(chosen["metric"]))
    _check_evaluation(cfg)


# parts whose logits give metrics.csv its val_auc_* columns (Method.logits / Hybrid.batch_logits)
_CLASSIFIER_PARTS = ("classifier", "hybrid_classifier")


def validation_columns(cfg: dict, index: int) -> tuple[set[str], bool]:
    """``(columns, open_ended)``: the ``metrics.csv`` validation columns stage ``index`` writes -- ``val_<key>``
    for the method's :attr:`~radclr.methods.Method.validation_keys`, and with a classifier (this stage's, or one
    an earlier stage trained) ``val_auc_mean`` and ``val_auc_<finding>`` for ``data.findings``. ``open_ended``:
    the findings are not in the config (every finding of the dataset), so any ``val_auc_<name>`` may exist."""
    cls = method_class(cfg["stages"][index]["method"])
    cols = {f"val_{k}" for k in cls.validation_keys}
    own = any(p in cls.trained_parts for p in _CLASSIFIER_PARTS)
    earlier = any("classifier" in method_class(st["method"]).trained_parts for st in cfg["stages"][:index])
    findings = cfg["data"].get("findings")
    if not (own or earlier):
        return cols, False
    cols.add("val_auc_mean")
    if isinstance(findings, list):
        cols |= {f"val_auc_{f}" for f in findings}
        return cols, False
    return cols, True


def _check_best_metric(cfg: dict, index: int, metric: str) -> None:
    """``best_checkpoint.metric`` must name a validation column stage ``index`` writes to ``metrics.csv``: a name
    that is never written would leave every epoch "not better" and best.pt silently the last epoch."""
    cols, open_ended = validation_columns(cfg, index)
    if metric in cols or (open_ended and metric.startswith("val_auc_") and len(metric) > len("val_auc_")):
        return
    method = cfg["stages"][index]["method"]
    more = " or val_auc_<finding>" if open_ended else ""
    raise ConfigError(f"stages.{index}.best_checkpoint.metric: {metric!r} is not a validation column of "
                      f"metrics.csv for method {method!r} (its columns: {', '.join(sorted(cols))}{more})")


def _check_evaluation(cfg: dict) -> None:
    """``evaluation.cam_layer`` and ``evaluation.cam_threshold`` (read only when the run is evaluated, after
    training): checked with the config so that a misspelt value fails before any training."""
    ev = cfg["evaluation"]
    layer = ev.get("cam_layer", "method")
    if layer not in ("method", *LAYERS):
        raise ConfigError(f"evaluation.cam_layer must be method | {' | '.join(LAYERS)}, got {layer!r}")
    rule = ev.get("cam_threshold", "auto")
    if isinstance(rule, str):
        if rule not in ("auto", "auto_per_finding", "method"):
            raise ConfigError("evaluation.cam_threshold must be auto | auto_per_finding | method | a number, got "
                              f"{rule!r}")
        return
    last = cfg["stages"][-1]  # the evaluated model's CAM mode gives the number its meaning
    mode = str(last.get("cam_mode", CamOptions.mode))
    try:
        CamOptions(threshold=float(rule), mode=mode)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"evaluation.cam_threshold: {e}") from None


def dump_config(cfg: dict, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False))


# keys whose default is text but which also take these types (``amp: off`` is YAML for false)
OTHER_TYPES: dict[str, tuple[type, ...]] = {
    "data.path": (list,),  # several datasets combined
    "evaluation.cam_threshold": (int, float),  # auto | method | a number
    "trainer.amp": (bool, type(None)),
    "trainer.deterministic": (bool, type(None)),
    "trainer.num_workers": (int,),  # auto | a count
    "trainer.sync_every_steps": (int,),  # auto | N
}
# element types of list-valued keys
ELEMENT_TYPES: dict[str, type] = {"trainer.keep_epochs": int, "model.radiomics_hidden": int}
_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text", list: "a list",
               dict: "a section (mapping)"}


def _kind(default) -> type | None:
    for t in (bool, int, float, str, list, dict):
        if isinstance(default, t):
            return t
    return None


def _checked(key: str, value, default, element: str | None = None):
    """``value`` converted to the type of ``default`` (a whole-number float -> int), or ConfigError naming ``key``."""
    kind = _kind(default)
    if kind is None or isinstance(value, OTHER_TYPES.get(key, ())):
        return value
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str),
          list: lambda v: isinstance(v, list),
          dict: lambda v: isinstance(v, dict)}[kind]
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not ok(value):
        hint = " (fractions are not truncated)" if kind is int and isinstance(value, float) else ""
        raise ConfigError(f"{key} must be {_TYPE_WORDS[kind]}, got {value!r}{hint}"
                          + (f" (default {default!r})" if element is None else f" (an element of {element})"))
    if kind is list and key in ELEMENT_TYPES:
        for k, v in enumerate(value):
            value[k] = _checked(f"{key}.{k}", v, ELEMENT_TYPES[key](), element=key)
    return value


def _check_section(prefix: str, values: dict, defaults: dict) -> None:
    for k, default in defaults.items():
        if k not in values:
            continue
        key = f"{prefix}.{k}" if prefix else k
        values[k] = _checked(key, values[k], default)
        if isinstance(default, dict) and default and isinstance(values[k], dict):
            _check_section(key, values[k], default)


def check_types(cfg: dict) -> None:
    """Check (and normalise whole-number floats of) every known key against the type of its default; stage keys
    against the trainer's; each stage's method options with the method's options class (see module docstring)."""
    _check_section("", cfg, DEFAULTS)
    for i, st in enumerate(cfg["stages"]):
        _check_section(f"stages.{i}", st, DEFAULTS["trainer"])
        if not isinstance(st.get("name", ""), str):
            raise ConfigError(f"stages.{i}.name must be text, got {st['name']!r}")
        eff = stage_settings(cfg, i)
        method_class(st["method"]).Options.from_config(eff["options"], st["method"])


_MISSING = object()


def _lookup(node, dotted: str):
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def check_ranges(cfg: dict) -> None:
    """Every number of :data:`radclr.ranges.CONFIG_RANGES` in its range (``trainer.optimizer.lr=-0.1``,
    ``radiomics.bin_width=0``, ``nan``) -> :class:`ConfigError` naming the key; a stage's own trainer keys are
    named ``stages.<i>.<key>``. Part of :func:`validate_config`, so before any work."""
    for key, rng in CONFIG_RANGES.items():
        value = _lookup(cfg, key)
        if value is not _MISSING:
            check_range(key, value, rng)
        if key.startswith("trainer."):
            for i, st in enumerate(cfg["stages"]):
                value = _lookup(st, key[len("trainer."):])
                if value is not _MISSING:
                    check_range(f"stages.{i}.{key[len('trainer.'):]}", value, rng)
    for key, rng in CONFIG_RANGES_IF_NUMBER.items():
        value = _lookup(cfg, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            check_range(key, value, rng)
    for k, v in enumerate(cfg["trainer"].get("keep_epochs") or []):
        check_range(f"trainer.keep_epochs.{k}", v, POSITIVE_INT)
