"""The package's shape, read from its source: the layer order of radclr/__init__.py holds (no module imports a
package listed below its own), methods never reach into the loop or the run orchestration, one function turns
boxes into pixels, and the training loop calls only hooks that Method declares."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "radclr"
# bottom-up, as the package map in radclr/__init__.py lists them
LAYERS = ["errors", "safe_write", "ranges", "yamlfile", "progress", "boxes", "io", "data", "ops", "radiomics", "transforms", "networks", "losses", "cam",
          "evaluation", "visualize", "runtime", "training_data", "methods", "engine", "runs", "predict", "report",
          "doctor", "demo", "cli", "__main__"]


def _imports():
    for path in PKG.rglob("*.py"):
        top = path.relative_to(PKG).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("radclr."):
                    yield path, top, name.split(".")[1], name


def test_every_package_is_in_the_map():
    tops = {p.relative_to(PKG).parts[0].removesuffix(".py") for p in PKG.rglob("*.py")} - {"__init__"}
    assert tops <= set(LAYERS), f"add {sorted(tops - set(LAYERS))} to the package map (radclr/__init__.py)"
    doc = (PKG / "__init__.py").read_text()
    for name in LAYERS[:-2]:
        assert re.search(rf"^    {re.escape(name)}(/|\.py)", doc, re.M), f"{name} missing from the package map"


def test_no_package_imports_one_listed_below_it():
    rank = {n: i for i, n in enumerate(LAYERS)}
    bad = [f"{p.relative_to(PKG.parent)}: {name}" for p, top, target, name in _imports()
           if target != top and rank[target] > rank[top]]
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_methods_do_not_import_the_loop_or_orchestration():
    bad = [f"{p.name}: {name}" for p, top, target, name in _imports()
           if top == "methods" and target in ("engine", "runs", "training_data", "report", "cli")]
    assert not bad, bad


def test_one_function_rasterises_boxes():
    found = [f"{p.relative_to(PKG)}:{node.name}" for p in PKG.rglob("*.py") for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.FunctionDef) and re.fullmatch(r"_?boxe?s?_?(to_)?masks?", node.name)]
    assert found == ["boxes.py:boxes_to_masks"]


def test_the_loop_calls_only_declared_method_hooks():
    from radclr.methods.base import Method

    loop = ast.parse((PKG / "engine" / "loop.py").read_text())
    called = {node.func.attr for node in ast.walk(loop)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name) and node.func.value.id == "method"}
    undeclared = sorted(c for c in called if not hasattr(Method, c))
    assert not undeclared, undeclared
    assert "hasattr(method" not in (PKG / "engine" / "loop.py").read_text()


@pytest.mark.parametrize("name", ["supervised", "radiomics_contrastive", "byop", "simclr", "correspondence", "hybrid"])
def test_method_options_are_dataclasses_with_documented_defaults(name):
    import dataclasses

    from radclr.errors import ConfigError
    from radclr.methods import method_class

    opts = method_class(name).Options
    assert dataclasses.is_dataclass(opts)
    assert opts.from_config({}) == opts()  # every option has a default
    with pytest.raises(ConfigError, match="unknown option"):
        opts.from_config({"no_such_option": 1}, name)
