"""One box type: :class:`usvid.boxes.Box` is the only box class or alias in the package (issue #14).

Boxes once lived as bare ``(x0, y0, x1, y1)`` tuples under several aliases (``StoredBox``, ``BoxXYWH``), each
with its own corner order. A new class or type alias named like a box anywhere but ``usvid/boxes.py`` fails here:
use ``Box`` (COCO ``[x, y, w, h]``) and convert with ``as_xyxy()`` where corners are needed. Rectangles that are
not lesion boxes (a scan region, a text field) take another name, such as ``ScanRegion`` or ``RegionRect``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The package's source folders (``models/`` and ``cli/`` install as ``usvid.models`` and ``usvid.cli``).
PACKAGE_DIRS = ("usvid", "models", "cli")
HOME = ROOT / "usvid" / "boxes.py"
#: Names of box-like types: ``Box``, ``StoredBox``, ``BoxXYWH``, ``LesionBoxes``, ``BoxCorners`` ...
BOX_NAME = re.compile(r"Box(?:es)?(?:XYWH|XYXY|Corners|Tuple|Type)?$")


def _defined_names(tree: ast.Module) -> list[tuple[str, int]]:
    """Classes (at any depth) and module- or class-level assigned names (aliases), with their lines."""
    found: list[tuple[str, int]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                found.append((node.name, node.lineno))
                visit(node.body)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.extend((n.name, n.lineno) for n in ast.walk(node) if isinstance(n, ast.ClassDef))
            elif isinstance(node, ast.Assign):
                found.extend((t.id, node.lineno) for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found.append((node.target.id, node.lineno))
            elif type(node).__name__ == "TypeAlias":  # ``type X = ...`` (Python 3.12)
                found.append((node.name.id, node.lineno))  # type: ignore[attr-defined]
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)

    visit(tree.body)
    return found


def box_like_definitions(paths: list[Path]) -> list[str]:
    """``file:line name`` of every box-like class or alias defined outside :data:`HOME`."""
    out = []
    for path in paths:
        if path.resolve() == HOME:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        out.extend(f"{where}:{line} {name}" for name, line in _defined_names(tree) if BOX_NAME.search(name))
    return out


def _package_files() -> list[Path]:
    return sorted(p for d in PACKAGE_DIRS for p in (ROOT / d).rglob("*.py"))


def test_box_is_defined_once():
    found = box_like_definitions(_package_files())
    assert not found, (
        "box-like types defined outside usvid/boxes.py (use usvid.boxes.Box, COCO [x, y, w, h], and "
        f"as_xyxy() where corners are needed): {found}"
    )


def test_the_rule_sees_aliases_and_classes(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import NamedTuple, TypeAlias\n"
        "StoredBox = tuple[float, float, float, float]\n"
        "BoxXYWH: TypeAlias = tuple[int, int, int, int]\n"
        "class LesionBox(NamedTuple):\n    x: int\n"
        "def f():\n    class InnerBox: ...\n"
        "RegionRect = tuple[int, int, int, int]\n"
        "class ScanLetterbox: ...\n"
        "BOX_DECIMALS = 2\n"
    )
    found = [entry.split()[-1] for entry in box_like_definitions([source])]
    assert found == ["StoredBox", "BoxXYWH", "LesionBox", "InnerBox"]
    assert box_like_definitions([HOME]) == [], "usvid/boxes.py is the home and is not reported"
