"""The disease hierarchy (body part -> diseases) and "hard similar" negatives (seed 001 §3.1, Fig. 4).

Seed 001 §3.1: "each disease belongs to a body part. We therefore only treat normal chest X-rays or images
within the same body part but with a different disease as negative examples ... if our anchor image is labeled
as Pneumonia/Lung, our hard similar images should include Atelectasis/Lung, Edema/Lung, or Normal but not Bone
Fractures." The hierarchy ships as ``radclr/data/resources/disease_hierarchy.yaml`` (its header documents the
source and the assumptions).

Rule implemented by :func:`hard_negative_mask` (row = anchor a, column = candidate k, a != k):

* labels are 1 (present), 0 (absent) or NaN (unknown). **Unknown is not evidence** either way.
* The anchor's diseases D(a) are its *most specific* positive labels: a label whose sub-type is also positive
  is implied by it (``Pneumonia | Bacterial`` -> {Bacterial}). Anchors with no positive label have no negatives.
* k is a hard negative of a iff
  1. k is **normal** (every label known and 0 -- "no studied finding"; with ``normal=`` given, additionally
     flagged by it, e.g. NIH "No Finding": no positive label among *all* the dataset's findings, so an image with
     only an unstudied finding such as Emphysema is not normal), or k has a most-specific disease in a body part
     of one of the anchor's diseases (**same body part**); and
  2. k **shares no disease** with a: none of k's most-specific diseases equals, is an ancestor of, or is a
     sub-type of one of D(a); and k's label for every disease in D(a) is *known* to be 0 (NaN could hide it).
* Multi-label anchors: the union over the anchor's body parts, minus images sharing any of its diseases.

Example: anchor Bacterial (Kermany ``Pneumonia|Bacterial``): Viral images are negatives (same body part,
different sub-type), Normal images are negatives, other Bacterial images and images labelled only "Pneumonia"
are not.

Unknown finding names raise :class:`~radclr.errors.DataError` (``unknown="error"``, default) or are each put
in a body part of their own (``unknown="other"``: such a disease's hard negatives are then only normal images).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radclr.errors import ConfigError, DataError
from radclr.yamlfile import read_yaml

DEFAULT_PATH = Path(__file__).resolve().parent / "resources" / "disease_hierarchy.yaml"


def normalise_name(name: str) -> str:
    """Case- and separator-insensitive key: ``"Pleural_Thickening"`` -> ``"pleural thickening"``."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-]", " ", str(name))).strip().lower()


@dataclass
class DiseaseHierarchy:
    """Body parts, their diseases, sub-type parents, aliases and the names meaning "normal"."""

    body_part_of: dict[str, str]  # canonical disease -> body part
    parent_of: dict[str, str] = field(default_factory=dict)  # canonical sub-type -> canonical parent
    aliases: dict[str, str] = field(default_factory=dict)  # normalised spelling -> canonical disease
    normal_names: tuple[str, ...] = ("No Finding",)
    source: str = "<dict>"

    def __post_init__(self) -> None:
        self._lookup = {normalise_name(d): d for d in self.body_part_of}
        for spelling, canon in self.aliases.items():
            self._lookup.setdefault(normalise_name(spelling), canon)
        self._normal = {normalise_name(n) for n in self.normal_names}

    # --- construction ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path=None) -> "DiseaseHierarchy":
        """Read a hierarchy YAML (default: the shipped ``disease_hierarchy.yaml``)."""
        p = Path(path) if path is not None else DEFAULT_PATH
        if not p.is_file():
            raise ConfigError(f"disease hierarchy file {p} does not exist")
        data = read_yaml(p, "disease hierarchy file")
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, data, source: str = "<dict>") -> "DiseaseHierarchy":
        """Build from the YAML layout: ``{normal: [...], body_parts: {part: {diseases: [name | {name, parent,
        aliases}]}}}``; errors name the offending key."""
        if not isinstance(data, dict) or not isinstance(data.get("body_parts"), dict) or not data["body_parts"]:
            raise ConfigError(f"{source}: needs a non-empty mapping 'body_parts'")
        body_part_of: dict[str, str] = {}
        parents: dict[str, str] = {}
        aliases: dict[str, str] = {}
        seen: dict[str, str] = {}
        for part, spec in data["body_parts"].items():
            entries = spec.get("diseases") if isinstance(spec, dict) else None
            if not isinstance(entries, list) or not entries:
                raise ConfigError(f"{source}: body_parts.{part}.diseases must be a non-empty list")
            for i, entry in enumerate(entries):
                if isinstance(entry, str):
                    entry = {"name": entry}
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                    raise ConfigError(f"{source}: body_parts.{part}.diseases[{i}] needs a 'name'")
                unknown_keys = set(entry) - {"name", "parent", "aliases"}
                if unknown_keys:
                    raise ConfigError(f"{source}: body_parts.{part}.diseases[{i}] has unknown key(s) "
                                      f"{sorted(unknown_keys)}")
                name = entry["name"]
                for spelling in [name, *entry.get("aliases", [])]:
                    key = normalise_name(spelling)
                    if key in seen and seen[key] != name:
                        raise ConfigError(f"{source}: name {spelling!r} is used for both {seen[key]!r} and {name!r}")
                    seen[key] = name
                    if spelling != name:
                        aliases[spelling] = name
                body_part_of[name] = str(part)
                if entry.get("parent"):
                    parents[name] = entry["parent"]
        for child, parent in parents.items():
            if parent not in body_part_of:
                raise ConfigError(f"{source}: parent {parent!r} of {child!r} is not a disease of the hierarchy")
            if body_part_of[parent] != body_part_of[child]:
                raise ConfigError(f"{source}: sub-type {child!r} ({body_part_of[child]}) must be in the body part "
                                  f"of its parent {parent!r} ({body_part_of[parent]})")
        for child in parents:  # no cycles
            chain, node = {child}, child
            while node in parents:
                node = parents[node]
                if node in chain:
                    raise ConfigError(f"{source}: parent cycle through {child!r}")
                chain.add(node)
        normal = tuple(data.get("normal") or ("No Finding",))
        clash = [n for n in normal if normalise_name(n) in seen]
        if clash:
            raise ConfigError(f"{source}: normal name(s) {clash} are also disease names")
        return cls(body_part_of, parents, aliases, normal, source)

    # --- queries ---------------------------------------------------------------------------------------
    @property
    def diseases(self) -> list[str]:
        return list(self.body_part_of)

    @property
    def body_parts(self) -> list[str]:
        return list(dict.fromkeys(self.body_part_of.values()))

    def is_normal_name(self, name: str) -> bool:
        return normalise_name(name) in self._normal

    def canonical(self, name: str, unknown: str = "error") -> str:
        """The hierarchy's spelling of ``name``; unknown names raise DataError (or are kept with ``"other"``)."""
        key = normalise_name(name)
        if key in self._lookup:
            return self._lookup[key]
        if unknown == "other":
            return str(name)
        raise DataError(f"finding {name!r} is not in the disease hierarchy ({self.source}); known: "
                        f"{sorted(self.diseases)} (add it to the YAML, or pass unknown='other')")

    def body_part(self, name: str, unknown: str = "error") -> str:
        """Body part of ``name``; with ``unknown="other"`` an unknown finding gets its own part ``other:<name>``."""
        canon = self.canonical(name, unknown)
        return self.body_part_of.get(canon, f"other:{canon}")

    def ancestors(self, name: str) -> list[str]:
        out, node = [], self.canonical(name, "other")
        while node in self.parent_of:
            node = self.parent_of[node]
            out.append(node)
        return out

    def related(self, a: str, b: str) -> bool:
        """Same disease, or one is a sub-type (at any depth) of the other."""
        a, b = self.canonical(a, "other"), self.canonical(b, "other")
        return a == b or a in self.ancestors(b) or b in self.ancestors(a)

    def finding_relations(self, findings, unknown: str = "error") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(same_part, related, descendant)`` boolean ``[F, F]`` matrices for a finding list (cached).

        ``descendant[i, j]``: finding j is a sub-type (at any depth) of finding i.
        """
        key = (tuple(findings), unknown)
        cache = self.__dict__.setdefault("_relations", {})
        if key not in cache:
            findings = list(findings)
            normal_cols = [f for f in findings if self.is_normal_name(f)]
            if normal_cols:
                raise DataError(f"findings {normal_cols} name 'normal'; normal images must be encoded as all-0 "
                                "labels")
            canon = [self.canonical(f, unknown) for f in findings]
            dup = sorted({c for c in canon if canon.count(c) > 1})
            if dup:
                raise DataError(f"findings map to the same disease more than once: {dup} (from {findings})")
            parts = [self.body_part(c, "other") for c in canon]
            idx = range(len(canon))
            same_part = np.array([[parts[i] == parts[j] for j in idx] for i in idx], dtype=bool)
            related = np.array([[self.related(canon[i], canon[j]) for j in idx] for i in idx], dtype=bool)
            descendant = np.array([[canon[i] in self.ancestors(canon[j]) for j in idx] for i in idx], dtype=bool)
            cache[key] = (same_part, related, descendant)
        return cache[key]


_DEFAULT: DiseaseHierarchy | None = None


def default_hierarchy() -> DiseaseHierarchy:
    """The shipped hierarchy (loaded once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = DiseaseHierarchy.load()
    return _DEFAULT


def _as_numpy(labels):
    try:
        import torch  # the data layer stays torch-free
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and torch.is_tensor(labels):
        return labels.detach().cpu().double().numpy(), labels.device
    return np.asarray(labels, dtype=np.float64), None


def _back(mask: np.ndarray, device):
    if device is None:
        return mask
    import torch  # the data layer stays torch-free

    return torch.as_tensor(mask, dtype=torch.bool, device=device)


def _check_labels(y: np.ndarray, findings) -> None:
    if y.ndim != 2 or y.shape[1] != len(findings):
        raise ValueError(f"labels must be [N, F] with F = len(findings) = {len(findings)}, got shape {y.shape}")
    bad = ~np.isnan(y) & (y != 0) & (y != 1)
    if bad.any():
        raise ValueError(f"labels must be 0, 1 or NaN (unknown); found {np.unique(y[bad])[:5].tolist()}")


def hard_negative_mask(labels, findings, hierarchy: DiseaseHierarchy | None = None, *, unknown: str = "error",
                       normal=None):
    """Boolean ``[N, N]``: ``mask[a, k]`` = image k is a "hard similar" negative of anchor a (module rule).

    ``labels``: ``[N, F]`` (NumPy or torch; 1 / 0 / NaN) over ``findings`` (names resolved through the
    hierarchy; a ``"No Finding"`` column is refused -- normal means all findings 0). ``normal``: optional boolean
    ``[N]`` restricting which all-0 images count as normal (``None``: every image whose studied findings are all
    known 0). Returns the same kind of array as ``labels`` (a torch mask on the labels' device). Never ``True`` on
    the diagonal.
    """
    h = hierarchy or default_hierarchy()
    findings = list(findings)
    y, device = _as_numpy(labels)
    _check_labels(y, findings)
    same_part, related, descendant = h.finding_relations(findings, unknown)

    pos = y == 1
    known_zero = y == 0
    # most specific positives: drop a label when one of its sub-types is also positive
    specific = pos & ~((pos.astype(np.int64) @ descendant.T.astype(np.int64)) > 0)
    s = specific.astype(np.int64)
    is_normal = known_zero.all(axis=1)
    if normal is not None:  # e.g. NIH "No Finding" only (byop negatives_normal: no_finding)
        flag = _as_numpy(normal)[0].astype(bool).reshape(-1)
        if flag.shape != is_normal.shape:
            raise ValueError(f"normal must be [N] = [{is_normal.shape[0]}], got shape {flag.shape}")
        is_normal = is_normal & flag
    anchor_ok = pos.any(axis=1)
    in_part = (s @ same_part.astype(np.int64)) > 0  # [N, F]: finding f lies in a body part of the anchor
    same_part_disease = (in_part.astype(np.int64) @ s.T) > 0  # [a, k]
    shares = (s @ related.astype(np.int64) @ s.T) > 0
    hidden = (s @ (~known_zero).astype(np.int64).T) > 0  # k not known-0 for an anchor disease
    mask = anchor_ok[:, None] & (is_normal[None, :] | same_part_disease) & ~shares & ~hidden
    np.fill_diagonal(mask, False)
    return _back(mask, device)


__all__ = ["DiseaseHierarchy", "default_hierarchy", "normalise_name", "hard_negative_mask",
           "DEFAULT_PATH"]
