"""The Bento's requirements (``serving/bentofile.yaml``) are pinned: each package to the version installed here (the
one the tests run with), and every package the served code imports is among them.

"The served code" is found by importing the service the way a worker does and reading the imports of every module
of this project it loaded (``serving/`` and ``src/exprfusion``); BentoML installs itself and its own dependencies.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib.metadata import packages_distributions, requires, version
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)$")


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> dict[str, str]:
    """Package -> pinned version, from the bentofile (a line that is not ``name==version`` fails here)."""
    packages = yaml.safe_load((REPOSITORY / "serving" / "bentofile.yaml").read_text())["python"]["packages"]
    pins = {}
    for requirement in packages:
        match = PIN.match(requirement.strip())
        assert match, f"not pinned to one version: {requirement!r}"
        pins[normalised(match[1])] = match[2]
    return pins


def served_modules() -> list[Path]:
    """The files of this project a worker imports with the service (a child process: its imports, not ours)."""
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import serving.service; "
        "print(json.dumps([getattr(m, '__file__', None) for m in list(sys.modules.values())]))"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(REPOSITORY)], capture_output=True, text=True, check=True)
    files = [Path(file) for file in json.loads(done.stdout.splitlines()[-1]) if file]
    own = [REPOSITORY / "serving", REPOSITORY / "src" / "exprfusion"]
    return sorted({file for file in files if any(file.is_relative_to(folder) for folder in own)})


def imported_distributions(files: list[Path]) -> set[str]:
    """The distributions the top-level imports of ``files`` come from (standard library and the project left out)."""
    providers = packages_distributions()
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names}:
                if top in sys.stdlib_module_names or top in ("__future__", "exprfusion", "serving"):
                    continue
                found.update(normalised(name) for name in providers.get(top, [top]))
    return found


def test_every_requirement_is_pinned_to_the_installed_version():
    pins = pinned()
    installed = {name: version(name).split("+")[0] for name in pins}  # a local label (+cpu) is no other release
    assert pins == installed


def test_every_package_the_served_code_imports_is_pinned():
    files = served_modules()
    assert REPOSITORY / "serving" / "streaming.py" in files  # control: the scan sees the worker's imports
    bentoml_brings = {normalised(re.match(r"[A-Za-z0-9_.-]+", r)[0]) for r in requires("bentoml") or []}
    missing = imported_distributions(files) - set(pinned()) - bentoml_brings - {"bentoml"}
    assert missing == set()
