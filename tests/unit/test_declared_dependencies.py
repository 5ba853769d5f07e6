"""Every import is declared: the package's imports in ``[project] dependencies``, the tests' and
benchmarks' in those or the ``dev`` extra. A machine may hold packages nobody declared (numpy was
one): ``.ci/run`` installs into a brand-new venv, and this test names the culprit before that."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the project's own modules: the package, the tests and the benchmarks (which import each other)
LOCAL = {"focus_platform", "tests", "conftest", *(p.stem for p in (ROOT / "benchmarks").glob("*.py"))}
# namespace packages: the import path that names the distribution
NAMESPACES = {"google.cloud.storage": "google-cloud-storage", "google.cloud": "google-cloud-storage",
              "google.auth": "google-auth", "google.api_core": "google-api-core"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    names = lambda specs: {_norm(re.split(r"[\[<>=!~; ]", s, maxsplit=1)[0]) for s in specs}  # noqa: E731
    return names(project["dependencies"]), names(project["optional-dependencies"]["dev"])


def _imports(folder: str) -> dict[str, str]:
    """Third-party module → a file importing it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in LOCAL or top == "__future__":
                    continue
                found.setdefault(module, str(path.relative_to(ROOT)))
    return found


def _distribution(module: str) -> str:
    for prefix, dist in NAMESPACES.items():
        if module == prefix or module.startswith(prefix + "."):
            return dist
    dists = packages_distributions().get(module.split(".")[0], [])
    assert dists, f"{module}: imported but no installed distribution provides it"
    return _norm(dists[0])


def test_the_package_imports_only_declared_dependencies():
    runtime, _ = _declared()
    missing = {m: f for m, f in _imports("focus_platform").items() if _distribution(m) not in runtime}
    assert not missing, f"imported by the package but not in [project] dependencies: {missing}"


def test_tests_and_benchmarks_import_only_declared_dependencies():
    runtime, dev = _declared()
    imports = {**_imports("tests"), **_imports("benchmarks")}
    missing = {m: f for m, f in imports.items() if _distribution(m) not in runtime | dev}
    assert not missing, f"imported by tests/benchmarks but not declared (dependencies or the dev extra): {missing}"
