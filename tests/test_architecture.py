"""The layout rules of docs/architecture.md, checked on the source: imports only downward, no module
imports the package __init__, no module shares the name of a function its package exports, and
modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pfibsims

ROOT = Path(pfibsims.__file__).parent

#: The layers, bottom to top (docs/architecture.md). A module may import from a lower layer, or from
#: its own package; nothing else.
LAYERS = [
    {"errors", "_version", "_memory"},
    {"units", "progress", "_chemistry"},
    {"grid"},
    {"transform"},
    {"dataset"},
    {"_engine"},
    {"_xr"},
    {"io", "normalization", "resampling", "synthetic"},
    {"registration"},
    {"correlate", "segmentation"},
    {"isotopes"},
    {"quantification"},
    {"pipeline"},
    {"plot"},
    {"app", "_deprecated"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
#: Issue 15's size rules: modules of about 600 lines, functions of about 80 code lines at most.
MAX_MODULE_LINES = 620
MAX_FUNCTION_LINES = 80


def _modules():
    return sorted(p for p in ROOT.rglob("*.py") if p.name not in ("__init__.py", "__main__.py") or p.parent != ROOT)


def _top(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_tops(path: Path) -> list[tuple[str, int]]:
    """(top-level pfibsims unit, line) of every relative or absolute pfibsims import in ``path``."""
    rel = path.relative_to(ROOT)
    pkg = list(rel.parts[:-1]) if rel.name != "__init__.py" else list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.split(".")[0] == "pfibsims":
                    parts = node.module.split(".")[1:]
                    out.append((parts[0] if parts else "", node.lineno))
                continue
            base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
            parts = base + (node.module.split(".") if node.module else [])
            if not parts:  # "from . import x" at the top level: x names a module
                out += [(alias.name, node.lineno) for alias in node.names]
            else:
                out.append((parts[0], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name.split(".")[1] if "." in a.name else "", node.lineno)
                    for a in node.names if a.name.split(".")[0] == "pfibsims"]
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_downward(path):
    here = _top(path)
    assert here in RANK, f"{here}: not in any layer of docs/architecture.md; add it there and here"
    for top, line in _imported_tops(path):
        assert top != "", f"{path.name}:{line} imports the pfibsims package __init__"
        if top == here:
            continue
        assert top in RANK, f"{path.name}:{line} imports {top!r}, which is in no layer"
        assert RANK[top] < RANK[here], (
            f"{path.relative_to(ROOT)}:{line} imports {top!r} (layer {RANK[top]}) from layer {RANK[here]}: "
            "imports go only downward"
        )


def test_no_module_shares_the_name_of_a_function_it_exports():
    import importlib
    import inspect

    for pkg in [pfibsims] + [importlib.import_module(f"pfibsims.{p.name}") for p in ROOT.iterdir()
                             if (p / "__init__.py").exists()]:
        for name in dir(pkg):
            obj = getattr(pkg, name)
            if inspect.isfunction(obj):
                sub = Path(pkg.__file__).parent / f"{name}.py"
                assert not sub.exists(), (
                    f"{pkg.__name__}.{name} is a function and {sub.relative_to(ROOT)} a module of the same name"
                )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {n} lines: one idea per module (about 600 at most)"


def _code_lines(src: list[str], node: ast.FunctionDef) -> int:
    """Lines of a function that are neither blank, comments nor its docstring."""
    body = node.body
    first = body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    start = first.end_lineno if docstring else first.lineno - 1
    return sum(1 for line in src[start : node.end_lineno] if line.strip() and not line.strip().startswith("#"))


def _reason_above(src: list[str], node: ast.FunctionDef) -> bool:
    """A comment block right above the function (or its decorators) that says why it is long."""
    top = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 2
    comment = []
    while top >= 0 and src[top].strip().startswith("#"):
        comment.append(src[top])
        top -= 1
    return any("on purpose" in line or "long because" in line.lower() for line in comment)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_functions_stay_short_or_say_why(path):
    src = path.read_text().splitlines()
    for node in ast.walk(ast.parse("\n".join(src))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = _code_lines(src, node)
            assert n <= MAX_FUNCTION_LINES or _reason_above(src, node), (
                f"{path.relative_to(ROOT)}:{node.lineno} {node.name} has {n} code lines (rule: about 80); split it, or "
                "say why it stays whole in a comment right above it ('... on purpose: ...')"
            )


def test_the_length_rule_counts_code_and_finds_reasons():
    """The counter skips docstring, blanks and comments; the reason is a comment block right above."""
    src = [
        "# Longer than the rule on purpose: one compiled loop.",
        "@decorator",
        "def f(x):",
        '    """Doc',
        '    string."""',
        "    # a comment",
        "",
        "    y = x",
        "    return y",
    ]
    node = ast.parse("\n".join(src)).body[0]
    assert _code_lines(src, node) == 2
    assert _reason_above(src, node)
    assert not _reason_above(src[1:], ast.parse("\n".join(src[1:])).body[0])


# What `import pfibsims` must not load: each is imported where it is used (the reader of its format, the
# figures, the 3-D render, the formula tables, rank statistics, template matching), so a notebook that only fuses
# does not pay its import (scipy.stats + scipy.signal: ~25 MB of resident memory).
_LAZY = ("xraydb", "sqlalchemy", "scipy.stats", "scipy.signal", "matplotlib", "pyvista", "h5py", "rsciio", "hyperspy",
         "ome_zarr", "distributed")


def test_import_leaves_the_optional_weight_unloaded():
    import subprocess
    import sys

    code = f"import sys, pfibsims; print(','.join(m for m in {_LAZY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "", f"import pfibsims loaded {out.stdout.strip()}"
