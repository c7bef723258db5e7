"""Imports flow one way: energies <- kernels <- adaptation <- run <- distributed/commands/training, with
`diagnostics` independent of `ebm_samplers` and `energies` independent of both; and no module imports itself
back through others.

The imports are read from the source with `ast` (module level and inside functions, which are deferred but still
dependencies; not those under `if TYPE_CHECKING:`). Importing `a.b.c` runs the package `a.b` first, so it counts
as an import of `a.b` too unless the importer lives inside `a.b` (its own package is already being imported); the
top-level packages are exempt, since they are always imported first.
"""

from __future__ import annotations

import ast
import importlib
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("energies", "diagnostics", "ebm_samplers")

#: Layers of ebm_samplers, lowest first: a module may import its own layer and those below, never above.
#: Matched by longest prefix; a module of ebm_samplers that no prefix names fails the test (place it here).
LAYERS: dict[str, int] = {
    "energies": 0,
    "ebm_samplers._atomic": 1,
    "ebm_samplers._validate": 1,
    "ebm_samplers.registry": 2,
    "ebm_samplers.kernels": 2,
    "ebm_samplers.replay_buffer": 2,
    "ebm_samplers._numba": 2,
    "ebm_samplers.adaptation": 3,
    "ebm_samplers.run": 4,
    "ebm_samplers.trace": 4,
    "ebm_samplers.streaming": 4,
    "ebm_samplers.moments": 4,
    "ebm_samplers.checkpoint": 4,
    "ebm_samplers._compiled_step": 4,
    "ebm_samplers._nonfinite": 4,
    "ebm_samplers.distributed": 5,
    "ebm_samplers.commands": 5,
    "ebm_samplers.training": 5,
    "ebm_samplers.cli": 5,
    "ebm_samplers.__main__": 5,
    "ebm_samplers": 5,  # the package itself re-exports the public API
}
LAYER_NAMES = {0: "energies", 1: "foundations", 2: "kernels", 3: "adaptation", 4: "run", 5: "top"}
#: `diagnostics` is a client of nothing in ebm_samplers; ebm_samplers may use it from the run layer up (reports).
DIAGNOSTICS_FROM_LAYER = 4


def find_modules(root: Path, packages: tuple[str, ...]) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package) for every .py file under the packages."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            modules[".".join(parts)] = (path, is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(name: str, path: Path, is_package: bool) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every import statement outside `if TYPE_CHECKING:` blocks."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.append((module, [alias.name for alias in node.names]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of `packages` whose import it runs (see the module docstring)."""
    modules = find_modules(root, packages)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        targets: set[str] = set()
        for module, names in _imported_names(name, path, is_package):
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            for target in submodules + ([module] if len(submodules) < len(names) or not names else []):
                parts = target.split(".")
                prefixes = (".".join(parts[:i]) for i in range(len(parts), 0, -1))
                known = next((prefix for prefix in prefixes if prefix in modules), None)
                if known is None:
                    continue
                targets.add(known)
                # the packages on the way, which run first: those the importer is not itself inside
                known_parts = known.split(".")
                for i in range(2, len(known_parts)):
                    package = ".".join(known_parts[:i])
                    if not (name == package or name.startswith(package + ".")):
                        targets.add(package)
        targets.discard(name)
        graph[name] = {t for t in targets if t in modules}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def layer(module: str) -> int | None:
    """The layer of a module of energies or ebm_samplers (None for diagnostics and unplaced modules)."""
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    return None if prefix is None else LAYERS[prefix]


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per import against the layering."""
    problems = []
    for module, targets in sorted(graph.items()):
        top = module.split(".")[0]
        for target in sorted(targets):
            target_top = target.split(".")[0]
            if top == "energies" and target_top != "energies":
                problems.append(f"{module} imports {target}: energies depends on nothing of this project")
            elif top == "diagnostics" and target_top == "ebm_samplers":
                problems.append(f"{module} imports {target}: diagnostics never imports ebm_samplers")
            elif top == "ebm_samplers":
                own = layer(module)
                if target_top == "diagnostics":
                    if own < DIAGNOSTICS_FROM_LAYER:
                        problems.append(f"{module} ({LAYER_NAMES[own]}) imports {target}: diagnostics is for reports")
                elif layer(target) > own:
                    problems.append(
                        f"{module} ({LAYER_NAMES[own]}) imports {target} ({LAYER_NAMES[layer(target)]}): "
                        "imports go down the layers energies <- kernels <- adaptation <- run <- top"
                    )
    return problems


def test_every_module_imports():
    for name in find_modules(ROOT, PACKAGES):
        if not name.endswith("__main__"):  # running it is the command line
            importlib.import_module(name)


def test_every_ebm_samplers_module_has_a_layer():
    unplaced = [name for name in find_modules(ROOT, ("ebm_samplers",)) if layer(name) is None]
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"


def test_no_import_cycles():
    found = cycles(import_graph(ROOT, PACKAGES))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(component) for component in found)


def test_imports_follow_the_layers():
    problems = layering_violations(import_graph(ROOT, PACKAGES))
    assert not problems, "\n".join(problems)


def _write_package(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.mark.parametrize(
    "files, expected",
    [
        # a deferred import closing a loop between two modules
        ({"p/__init__.py": "", "p/a.py": "from p.b import f\n", "p/b.py": "def f():\n    from p import a\n"}, 1),
        # a module importing a sibling package whose __init__ imports the module back
        (
            {
                "p/__init__.py": "",
                "p/reg.py": "from p.k.base import K\n",
                "p/k/__init__.py": "from p.k import one\n",
                "p/k/base.py": "",
                "p/k/one.py": "from p.reg import x\n",
            },
            1,
        ),
        # an import under TYPE_CHECKING is not a dependency
        (
            {
                "p/__init__.py": "",
                "p/a.py": "from p.b import f\n",
                "p/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p import a\n",
            },
            0,
        ),
    ],
)
def test_the_cycle_finder_finds_cycles(tmp_path, files, expected):
    _write_package(tmp_path, files)
    assert len(cycles(import_graph(tmp_path, ("p",)))) == expected


def test_the_layer_check_finds_an_upward_import():
    graph = {"ebm_samplers.kernels.mala": {"ebm_samplers.run.loop"}, "diagnostics.ksd": {"ebm_samplers.trace"}}
    graph |= {"energies.base": {"diagnostics.ksd"}, "ebm_samplers.run.loop": {"ebm_samplers.kernels.mala"}}
    assert len(layering_violations(graph)) == 3
