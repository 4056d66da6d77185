"""Checkpoints: atomic writes, ``weights_only=True`` loads, everything needed for an exact resume.

A checkpoint is a dict of tensors and plain Python values only (so ``torch.load(..., weights_only=True)``
accepts it): the method's state dict (all parts + method buffers such as memory banks), optimiser, scheduler
and AMP scaler states, the global RNG states, the position in the run (stage, epoch, step), the running
sums of the current epoch, the metrics history and the best monitored value.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from radclr.errors import ConfigError, RadclrError
from radclr.safe_write import atomic_path

FORMAT = "radclr-checkpoint-1"


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: through ``path.tmp``, fsynced, then renamed. A failed write (disk
    full, read-only folder) removes the ``.tmp``, keeps the previous checkpoint and raises
    :class:`~radclr.errors.OutputError` naming the file."""
    with atomic_path(path, "checkpoint") as tmp:
        with open(tmp, "wb") as f:  # a Python file: a full disk is an OSError of its write ...
            try:
                torch.save({"format": FORMAT, **state}, f)
            except RuntimeError as e:  # ... which torch's zip writer masks with its own RuntimeError on the way out
                cause = _os_error_in(e)
                if cause is None:
                    raise
                raise cause from None
            f.flush()
            os.fsync(f.fileno())


def _os_error_in(e: BaseException) -> OSError | None:
    """The OSError an exception was raised while handling (its ``__context__``/``__cause__`` chain), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise RadclrError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt / truncated / not a torch file / a pickle of other objects
        raise RadclrError(f"{path}: not a radclr checkpoint ({_unreadable_reason(e)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RadclrError(f"{path}: not a radclr checkpoint (a PyTorch file, but not one radclr wrote)")
    return state


def _unreadable_reason(e: Exception) -> str:
    """A few words for why torch could not load a file (torch's own text suggests ``weights_only=False`` -- which
    would run code from the file -- and filing an issue; neither applies)."""
    text = str(e)
    if "Unsupported global" in text:  # a pickle of classes: weights_only refuses to run their code
        return "it holds Python objects other than tensors and plain values; radclr does not load those"
    if isinstance(e, (EOFError, RuntimeError)) or "Weights only load failed" in text or "pickl" in text.lower():
        return "not a PyTorch checkpoint file, or a truncated one"
    return text.splitlines()[0][:200] if text else type(e).__name__


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _mismatch(own: dict, theirs: dict) -> str | None:
    """Why a part's state dict does not fit ours (None: every tensor has its counterpart of the same shape)."""
    missing = sorted(set(own) - set(theirs))
    extra = sorted(set(theirs) - set(own))
    if missing or extra:
        return f"different layers (missing {missing[:3]}, unexpected {extra[:3]})"
    shapes = [f"{k} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}" for k in own if theirs[k].shape != own[k].shape]
    return f"shape mismatch: {shapes[0]}" + (f" (+{len(shapes) - 1} more)" if len(shapes) > 1 else "") if shapes else None


def init_parts_from(parts: torch.nn.ModuleDict, path: str | Path, wanted=None, findings=None) -> dict:
    """Initialise ``parts`` from the parts a radclr checkpoint holds (``model.init_from``; ``model.init_parts``).

    ``wanted=None`` (default): every part of this run that the checkpoint has with the same layers and shapes is
    loaded; the others keep their initialisation and are reported (e.g. a classifier for other findings, when a
    model pretrained on one dataset is fine-tuned or probed on another). A classifier (a part named
    ``*classifier``: one output per finding) fits only when the checkpoint's findings are this run's ``findings``
    in the same order -- the same number of outputs for other findings is not a fit. A list names exactly the
    parts to load: each must be in the checkpoint and fit, else :class:`~radclr.errors.ConfigError`. The image
    encoder must load unless the list leaves it out. Returns ``{"loaded": [...], "skipped": {part: reason},
    "not_used": [checkpoint parts this run does not have]}``.
    """
    full = load_checkpoint(path)
    state = full["model"]
    their_findings = full.get("findings")
    theirs: dict[str, dict] = {}
    for key, value in state.items():
        if key.startswith("parts."):
            pname, _, rest = key[len("parts."):].partition(".")
            theirs.setdefault(pname, {})[rest] = value
    names = list(parts.keys()) if wanted is None else [str(w) for w in wanted]
    loaded, skipped = [], {}
    for pname in names:
        if pname not in parts:
            raise ConfigError(f"model.init_parts: {pname!r} is not a part of this run's first stage "
                              f"(its parts: {list(parts.keys())})")
        why = "not in the checkpoint" if pname not in theirs else _mismatch(parts[pname].state_dict(), theirs[pname])
        if why is None and pname.endswith("classifier") and findings is not None and their_findings is not None \
                and list(their_findings) != list(findings):
            why = f"it classifies the checkpoint's findings {list(their_findings)}, this run has {list(findings)}"
        if why is None:
            parts[pname].load_state_dict(theirs[pname])
            loaded.append(pname)
        elif wanted is not None:
            raise ConfigError(f"model.init_from {path}: part {pname!r} cannot be loaded: {why}")
        else:
            skipped[pname] = why
    if "encoder" in names and "encoder" not in loaded:
        raise ConfigError(f"model.init_from {path}: the image encoder cannot be loaded ({skipped.get('encoder')}); "
                          "is it the same model.encoder and input size/channels?")
    if not loaded:
        raise ConfigError(f"model.init_from {path}: no part of this run could be loaded")
    unused = sorted(set(theirs) - set(parts.keys()))
    return {"loaded": loaded, "skipped": skipped, "not_used": unused}
