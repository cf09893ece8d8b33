"""pyproject.toml declares what the code imports: the library, the service and the stages from ``dependencies``, the
tests and benchmarks from those plus the ``dev`` extra; and a runtime dependency nothing imports is named here."""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
RUNTIME_CODE = ("src", "serving", "pipelines")
DEVELOPMENT_CODE = ("tests", "benchmarks")
# Runtime dependencies used without an import of their own.
NOT_IMPORTED = {
    "dvc": "the pipeline runs as `dvc repro`",
    "prometheus-client": "the service's metrics: bentoml.metrics with prometheus_client's multiprocess modes",
}


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalised(re.match(r"[A-Za-z0-9_.-]+", requirement).group()) for requirement in requirements}


def top_level_imports(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Absolute imports outside the standard library: top-level module -> the files importing it."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((REPOSITORY / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "__future__":
                        found.setdefault(top, set()).add(str(path.relative_to(REPOSITORY)))
    return found


def local(module: str) -> bool:
    """This project's own code: the package, or a module beside the tests or benchmarks (their import paths)."""
    homes = [REPOSITORY / "tests", *(REPOSITORY / "tests").iterdir(), REPOSITORY / "benchmarks"]
    candidates = [home / f"{module}.py" for home in homes] + [REPOSITORY / "tests" / module]
    return module == "exprfusion" or any(candidate.exists() for candidate in candidates)


@functools.cache
def installed() -> dict[str, list[str]]:
    """Top-level module -> the installed distributions providing it."""
    return packages_distributions()


def distributions(module: str) -> set[str]:
    return {normalised(name) for name in installed().get(module, [])}


def undeclared(imports: dict[str, set[str]], declared: set[str]) -> dict[str, list[str]]:
    """Imported modules no declared distribution provides (with the files that import them)."""
    return {
        module: sorted(files)[:3]
        for module, files in imports.items()
        if not local(module) and not distributions(module) & declared
    }


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    return requirement_names(project["dependencies"]), requirement_names(project["optional-dependencies"]["dev"])


def test_runtime_code_imports_only_declared_dependencies():
    runtime, _ = declared()
    imports = top_level_imports(RUNTIME_CODE)
    assert {"torch", "numpy", "bentoml"} <= imports.keys(), "the scan must see the library's imports"
    assert undeclared(imports, runtime) == {}


def test_tests_and_benchmarks_import_only_declared_dependencies():
    runtime, dev = declared()
    imports = top_level_imports(DEVELOPMENT_CODE)
    assert {"pytest", "httpx", "psutil"} <= imports.keys(), "the scan must see the tests' imports"
    assert undeclared(imports, runtime | dev) == {}
    # Control: the development-only imports are not runtime dependencies.
    assert set(undeclared(imports, runtime)) >= {"pytest", "httpx"}  # psutil: a runtime dependency of the service


def test_every_runtime_dependency_is_imported_or_named_here():
    runtime, _ = declared()
    imported = set().union(*(distributions(module) for module in top_level_imports(RUNTIME_CODE)))
    assert runtime - imported - set(NOT_IMPORTED) == set()
    assert set(NOT_IMPORTED) <= runtime, "a name listed here must still be a dependency"
