"""dvc.yaml lists, for every stage script, exactly the project source files the script runs.

The expected files come from the import graph, read statically: each stage script's ``exprfusion`` imports, then
theirs, transitively, including imports inside functions and the ``__init__.py`` of every package on the way. A dep
that is a folder covers the files under it. A missing dep would let a stage go stale; a dep the script never imports
would rerun a stage for nothing (a change to plotting code must not rerun the search).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCE_ROOT = REPOSITORY / "src"
PACKAGE = "exprfusion"
STAGE_COMMAND = re.compile(r"python (pipelines/\w+\.py)")


def module_file(root: Path, module: str) -> Path | None:
    """The file that defines ``module`` under ``root``: ``a/b.py`` or ``a/b/__init__.py``; None if neither exists."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (function bodies too), except those under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif not _is_type_checking_block(node):
            pending.extend(ast.iter_child_nodes(node))
    return found


def direct_imports(path: Path, module: str | None, root: Path, package: str) -> set[str]:
    """The modules of ``package`` that the file at ``path`` imports (``module``: its dotted name, None for a script).

    ``from package.x import y`` counts ``package.x`` and, when ``y`` is itself a module, ``package.x.y``.
    """
    imported: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative import, resolved against the importing module's package
            parts = (module or "").split(".")
            anchor = parts if is_package else parts[:-1]
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        imported.add(base)
        imported.update(f"{base}.{alias.name}" for alias in node.names if module_file(root, f"{base}.{alias.name}"))
    return {name for name in imported if name == package or name.startswith(package + ".")}


def import_closure(script: Path, root: Path, package: str) -> set[Path]:
    """Every source file of ``package`` (under ``root``) that running ``script`` imports, directly or not.

    Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` first, so parent packages are included.
    """
    files: set[Path] = set()
    seen: set[str] = set()
    pending = list(direct_imports(script, None, root, package))
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            current = ".".join(parts[:depth])
            if current in seen:
                continue
            seen.add(current)
            path = module_file(root, current)
            if path is None:
                continue  # a name imported from a module (a class, a function), not a module of its own
            files.add(path)
            pending.extend(direct_imports(path, current, root, package))
    return files


def _paths(entries: list | None) -> list[str]:
    """The paths of a dvc.yaml deps/outs/metrics list (entries are paths or one-key mappings of path -> options)."""
    paths = []
    for entry in entries or []:
        paths.extend(entry if isinstance(entry, dict) else [entry])
    return [str(path) for path in paths]


def _covered(file: str, deps: list[str]) -> bool:
    return any(file == dep.rstrip("/") or file.startswith(dep.rstrip("/") + "/") for dep in deps)


def _dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((REPOSITORY / "dvc.yaml").read_text())["stages"]


def _script_stages() -> list[tuple[str, str]]:
    stages = []
    for name, stage in _dvc_stages().items():
        match = STAGE_COMMAND.fullmatch(stage["cmd"].strip())
        if match:
            stages.append((name, match.group(1)))
    return stages


# Code a stage ships besides its script: the package stage builds the Bento from serving/ (bentofile.yaml), so every
# project file the service imports is part of that stage's output.
SHIPPED = {"pipelines/package.py": ("serving",)}


def _expected_files(script: str) -> set[str]:
    entry_points = [REPOSITORY / script]
    for folder in SHIPPED.get(script, ()):
        entry_points += sorted((REPOSITORY / folder).rglob("*.py"))
    expected = {script}
    for entry in entry_points:
        closure = import_closure(entry, SOURCE_ROOT, PACKAGE)
        expected |= {path.relative_to(REPOSITORY).as_posix() for path in closure}
    return expected


def test_package_stage_lists_the_shipped_service_folder():
    assert "serving" in [dep.rstrip("/") for dep in _paths(_dvc_stages()["package"].get("deps"))]


def test_every_stage_is_checked():
    assert {name for name, _ in _script_stages()} == set(_dvc_stages())


@pytest.mark.parametrize(("stage", "script"), _script_stages())
def test_stage_lists_every_source_file_its_script_imports(stage, script):
    deps = _paths(_dvc_stages()[stage].get("deps"))
    missing = sorted(file for file in _expected_files(script) if not _covered(file, deps))
    assert not missing, f"dvc.yaml stage {stage!r} runs these files but does not list them as deps: {missing}"


@pytest.mark.parametrize(("stage", "script"), _script_stages())
def test_stage_lists_no_source_file_its_script_does_not_import(stage, script):
    expected = _expected_files(script)
    listed = [dep for dep in _paths(_dvc_stages()[stage].get("deps")) if dep.startswith(("src/", "pipelines/"))]
    extra = []
    for dep in listed:
        target = REPOSITORY / dep
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        extra += [path.relative_to(REPOSITORY).as_posix() for path in files if path.is_file()]
    extra = sorted(set(extra) - expected)
    assert not extra, f"dvc.yaml stage {stage!r} lists deps its script never imports (needless reruns): {extra}"


def test_every_listed_dep_exists_or_is_a_stage_output():
    stages = _dvc_stages()
    produced = {
        path for stage in stages.values() for key in ("outs", "metrics", "plots") for path in _paths(stage.get(key))
    }
    gone = [
        f"{name}: {dep}"
        for name, stage in stages.items()
        for dep in _paths(stage.get("deps"))
        if "${" not in dep and dep not in produced and not (REPOSITORY / dep).exists()
    ]
    assert not gone, f"dvc.yaml deps that no longer exist: {gone}"


def _write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_import_closure_follows_every_kind_of_import(tmp_path):
    """A fake package: each module is reached by a different kind of import; two modules are never imported."""
    root = tmp_path / "src"
    _write(root / "pkg" / "__init__.py")
    _write(root / "pkg" / "top.py", "import pkg.sub.deep\n")
    _write(root / "pkg" / "sub" / "__init__.py", "from pkg.sub import viainit\n")
    _write(root / "pkg" / "sub" / "viainit.py")
    _write(root / "pkg" / "sub" / "deep.py", "def f():\n    from pkg import lazy\n    return lazy\n")
    _write(root / "pkg" / "lazy.py", "from .relative import VALUE\n")
    _write(root / "pkg" / "relative.py", "VALUE = 1\n")
    _write(root / "pkg" / "named.py", "from pkg.relative import VALUE as V\n")
    _write(root / "pkg" / "typing_only.py")
    _write(root / "pkg" / "unused.py")
    _write(root / "other" / "__init__.py")
    script = tmp_path / "pipelines" / "stage.py"
    _write(
        script,
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "import other\n"
        "from pkg.named import V\n"
        "if TYPE_CHECKING:\n"
        "    import pkg.typing_only\n"
        "def main():\n"
        "    from pkg import top\n",
    )
    closure = {path.relative_to(root).as_posix() for path in import_closure(script, root, "pkg")}
    assert closure == {
        "pkg/__init__.py",
        "pkg/top.py",  # `from pkg import top` inside a function: a submodule named in from-import
        "pkg/sub/__init__.py",  # parent package of pkg.sub.deep
        "pkg/sub/viainit.py",  # imported by a package's __init__
        "pkg/sub/deep.py",  # `import pkg.sub.deep`
        "pkg/lazy.py",  # lazy import inside a function
        "pkg/relative.py",  # relative import `from .relative import VALUE`
        "pkg/named.py",  # `from pkg.named import V` (V is a name, not a module)
    }


def test_covered_by_a_folder_dep():
    assert _covered("src/pkg/sub/a.py", ["src/pkg/sub"])
    assert _covered("src/pkg/sub/a.py", ["src/pkg/sub/"])
    assert not _covered("src/pkg/subway.py", ["src/pkg/sub"])
