"""README.md stays a front door: short, with a package map equal to the tree, and every name in the docs real."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 200
# Names in the `exprfusion.` namespace that are not modules: entry-point groups, with the file that declares each.
ENTRY_POINT_GROUPS = {"exprfusion.face_detectors": SRC / "exprfusion" / "sources" / "extract" / "faces.py"}
DOTTED = re.compile(r"(?<![\w/.-])exprfusion(?:\.[A-Za-z_]\w*)+")
REPO_PATH = re.compile(r"(?<![\w/.-])(?:src|tests)/[\w/.-]*[\w/]")


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## ``."""
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def mapped_subpackages(readme: str) -> list[str]:
    return re.findall(r"^\| `src/exprfusion/(\w+)/` \|", section(readme, "Package map"), re.MULTILINE)


def subpackages() -> set[str]:
    return {path.parent.name for path in (SRC / "exprfusion").glob("*/__init__.py")}


def test_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_first_screen_gives_the_two_commands() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:15])
    assert "make repro" in first_screen
    assert "make test" in first_screen


def test_package_map_lists_exactly_the_subpackages() -> None:
    mapped = mapped_subpackages(README.read_text())
    assert len(mapped) == len(set(mapped)), f"listed twice: {sorted({m for m in mapped if mapped.count(m) > 1})}"
    tree = subpackages()
    assert set(mapped) == tree, (
        f"missing from the map: {sorted(tree - set(mapped))}; not in the tree: {sorted(set(mapped) - tree)}"
    )


def test_a_drifted_map_is_caught() -> None:
    readme = README.read_text()
    first = mapped_subpackages(readme)[0]
    dropped = "\n".join(line for line in readme.splitlines() if f"`src/exprfusion/{first}/`" not in line)
    assert set(mapped_subpackages(dropped)) != subpackages()
    renamed = readme.replace(f"`src/exprfusion/{first}/`", "`src/exprfusion/no_such_layer/`")
    assert set(mapped_subpackages(renamed)) != subpackages()


def test_package_map_lists_the_top_level_folders_and_test_folders() -> None:
    rows = section(README.read_text(), "Package map")
    for folder in ("pipelines", "serving", "monitoring", "benchmarks", "tests", "docs"):
        assert f"| `{folder}/` |" in rows
        assert (ROOT / folder).is_dir()
    (test_row,) = [line for line in rows.splitlines() if line.startswith("| `tests/` |")]
    listed = set(re.findall(r"`(\w+)`", test_row.split("|")[2]))
    on_disk = {path.parent.name for path in (ROOT / "tests").glob("*/test_*.py")}
    assert listed == on_disk


def top_level_names(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def resolves(dotted: str) -> bool:
    """``exprfusion.a.b[.name]``: a package or module under src/, optionally followed by a name it defines."""
    if dotted in ENTRY_POINT_GROUPS:
        return dotted in ENTRY_POINT_GROUPS[dotted].read_text()
    parts = dotted.split(".")
    path = SRC
    for i, part in enumerate(parts):
        if (path / part / "__init__.py").exists():
            path = path / part
            continue
        if (path / f"{part}.py").exists():
            rest = parts[i + 1 :]
            return not rest or (len(rest) == 1 and rest[0] in top_level_names(path / f"{part}.py"))
        rest = parts[i:]
        return len(rest) == 1 and rest[0] in top_level_names(path / "__init__.py")
    return True


def test_module_names_in_the_docs_exist() -> None:
    missing = {
        f"{doc.relative_to(ROOT)}: {name}"
        for doc in DOCS
        for name in DOTTED.findall(doc.read_text())
        if not resolves(name)
    }
    assert not missing, "names that do not exist in src/:\n" + "\n".join(sorted(missing))


def test_the_name_check_catches_a_wrong_name() -> None:
    assert resolves("exprfusion.tracking.registry")
    assert resolves("exprfusion.monitoring.drift.js_distance")
    assert not resolves("exprfusion.registry")  # the flat layout's path
    assert not resolves("exprfusion.monitoring.drift.no_such_function")


def test_repository_paths_in_the_docs_exist() -> None:
    missing = {
        f"{doc.relative_to(ROOT)}: {path}"
        for doc in DOCS
        for path in REPO_PATH.findall(doc.read_text())
        if not (ROOT / path).exists()
    }
    assert not missing, "paths that do not exist:\n" + "\n".join(sorted(missing))
