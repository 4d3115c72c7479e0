"""The layers of docs/architecture.md, checked on the real import graph (grimp) and by importing the API.

jail <- policies <- core <- {api, worker} <- cli: each layer imports only those below it; the
API imports of the jail only its plain spec types, so `import api.app` loads no namespace,
cgroup or seccomp code; and no two modules import each other in a circle, except the cgroup
factory and its two backends (jail/cgroup*.py), a circle by design.
"""

from __future__ import annotations

import subprocess
import sys

import grimp
import pytest

from tests.conftest import ROOT

PACKAGES = ("api", "cli", "core", "worker", "policies", "jail")
# The jail's plain types (and the record decorator they are made with), which every layer may share.
JAIL_SPEC = {"jail", "jail.spec", "jail.errors", "jail.record", "jail.sink"}
# What each package may import, besides itself and the standard library.
ALLOWED = {
    "jail": set(),
    "policies": {"jail"},
    "core": {"jail", "policies"},
    "api": {"jail", "policies", "core"},
    "worker": {"jail", "policies", "core"},
    "cli": {"jail", "policies", "core", "api", "worker"},
}
# Below the service, only the jail's spec types are shared: never its runtime.
SPEC_ONLY = {"policies", "core", "api"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=False, exclude_type_checking_imports=True)


def test_importing_the_api_loads_no_jail_runtime_and_no_worker() -> None:
    code = "import sys, api.app; print('\\n'.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "api.handlers" in loaded  # the import did happen
    assert {m for m in loaded if m.split(".")[0] == "jail"} <= JAIL_SPEC
    assert not {m for m in loaded if m.split(".")[0] in ("worker", "seccomp", "pyseccomp")}


def test_each_layer_imports_only_the_layers_below(graph: grimp.ImportGraph) -> None:
    wrong = []
    for module in sorted(graph.modules):
        layer = module.split(".")[0]
        for imported in graph.find_modules_directly_imported_by(module):
            target = imported.split(".")[0]
            if target == layer:
                continue
            if target not in ALLOWED[layer] or (layer in SPEC_ONLY and target == "jail" and imported not in JAIL_SPEC):
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "\n".join(wrong)


def _cycles(graph: grimp.ImportGraph) -> list[set[str]]:
    """The import graph's strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles_outside_the_cgroup_backends(graph: grimp.ImportGraph) -> None:
    cycles = [c for c in _cycles(graph) if not all(m.startswith("jail.cgroup") for m in c)]
    assert not cycles, cycles
