"""The package's shape: no import cycles (function-local imports included), the layers import
only downwards, one name per concept across the layers (no module, function or class name
defined in two layers, no aliased import of a package module), no module over 450 lines, and
function-local imports only for optional dependencies and for scikit-learn (kept off every
command's start-up). Parsed from the source, so nothing is imported."""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "fdrl_jax")
MAX_LINES = 450
# Imported inside functions so the package works without them.
OPTIONAL = {"tensorflow", "tensorflow_datasets", "clu", "torch", "pytorch_fid"}
# Imported inside the functions that use it: importing scikit-learn takes ~1 s of a command's
# ~3 s start-up, and only the digits loader and the sample metrics call it.
DEFERRED = {"sklearn"}
# Layers, lowest first: the pure library, the experiment assembly, the drivers.
ASSEMBLY = ("fdrl_jax.configlib", "fdrl_jax.experiment", "fdrl_jax.trainer", "fdrl_jax.sampler")
DRIVERS = ("fdrl_jax.modes", "fdrl_jax.run", "fdrl_jax.main", "fdrl_jax.convert")


def _modules() -> dict[str, str]:
    out = {}
    for d, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(d, f)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The most specific package module `name` refers to (a module, or the package holding a
    name imported from it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: str, module: str):
    """(imported module, line, inside a function?) for every import in the file."""
    tree = ast.parse(open(path).read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    local_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            local_nodes |= {id(n) for n in ast.walk(node) if n is not node}
    for node in ast.walk(tree):
        local = id(node) in local_nodes
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, local
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if full in MODULES else base), node.lineno, local


def _graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for name, _, _ in _imports(path, module):
            target = _resolve(name) if name.startswith("fdrl_jax") else None
            if target and target != module:
                graph[module].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return [*stack[stack.index(n) :], n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def _layer(module: str) -> int:
    if module.startswith(DRIVERS):
        return 2
    if module.startswith(ASSEMBLY):
        return 1
    return 0


def _defined(module: str, path: str) -> set[str]:
    """The public names a module defines: its own name, and its top-level functions and
    classes (imports are not definitions)."""
    tree = ast.parse(open(path).read(), path)
    names = {module.rpartition(".")[2]}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
            names.add(node.name)
    return names - {"__init__", "fdrl_jax"}


def test_no_import_cycles():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_layers_import_only_downwards():
    """The pure library imports neither the assembly nor a driver; the assembly imports no
    driver; `import fdrl_jax` (the package's API) loads no driver."""
    bad = [
        f"{m} imports {n}"
        for m, targets in _graph().items()
        for n in targets
        if _layer(n) > _layer(m) and not (m == "fdrl_jax" and _layer(n) == 1)
    ]
    assert not bad, bad


def test_no_name_is_defined_in_two_layers():
    """A name means one thing across the layers: `sample` is Algorithm 2, not also a mode."""
    where: dict[str, set[tuple[int, str]]] = {}
    for module, path in MODULES.items():
        for name in _defined(module, path):
            where.setdefault(name, set()).add((_layer(module), module))
    bad = {
        name: sorted(m for _, m in places)
        for name, places in where.items()
        if len({layer for layer, _ in places}) > 1
    }
    assert not bad, bad


def test_package_modules_are_imported_under_their_own_names():
    bad = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                base = getattr(node, "module", None) or ""
                for alias in node.names:
                    name = alias.name if isinstance(node, ast.Import) else base
                    if name.startswith("fdrl_jax") and alias.asname:
                        bad.append(f"{module}:{node.lineno} imports {alias.name} as {alias.asname}")
    assert not bad, bad


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_small(module):
    with open(MODULES[module]) as f:
        lines = sum(1 for _ in f)
    assert lines <= MAX_LINES, f"{module} has {lines} lines (max {MAX_LINES}): split it"


def test_function_local_imports_only_keep_optional_dependencies_off_the_import_path():
    bad = [
        f"{module}:{line} imports {name} inside a function"
        for module, path in MODULES.items()
        for name, line, local in _imports(path, module)
        if local and name.split(".")[0] not in OPTIONAL | DEFERRED
    ]
    assert not bad, bad


def test_the_public_api_and_importing_the_package_without_optional_dependencies():
    """`fdrl_jax.flow_step, flow, bregman_loss, ddp_sample` exist, and importing the package
    and its drivers pulls in none of TensorFlow, torch or clu, nor scikit-learn."""
    code = (
        "import sys; import fdrl_jax as f; import fdrl_jax.main\n"
        "assert all(callable(x) for x in (f.flow_step, f.flow, f.bregman_loss, f.ddp_sample))\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        f"print(sorted(loaded & set({sorted(OPTIONAL | DEFERRED)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
