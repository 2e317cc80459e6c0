"""Check that ``celery_warden``'s imports point one way: no circle, no import of a higher layer.

Run ``python tools/layers.py`` (exit code 1 on a violation) or see ``tests/unit/test_layers.py``.
Every ``import`` / ``from ... import`` of a ``celery_warden`` module is counted, wherever it
appears: at module level, inside a function (a function-level import does not remove a circle,
it hides it) or under ``if TYPE_CHECKING:``. A module may import its own layer and the layers
below; modules of one layer must not import each other in a circle. ``--graph`` prints the
layers with their modules and what each imports; ``--sizes`` lists modules over the size limit.

The layers, bottom to top (``docs/architecture.md`` says what each holds and why):
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "celery_warden"

#: Bottom to top. A module belongs to the first layer whose prefix matches its dotted name
#: (relative to ``celery_warden``); the package itself (``__init__``) is the top.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("errors", "settings", "alert_settings", "api_settings", "rates", "keys",
                    "headers", "priority", "redaction", "secret_text", "isolation", "embedded",
                    "config", "services", "scripts", "timefmt", "units", "version", "rabbitmq",
                    "retention_settings", "operator_keys", "totals_keys", "block_keys",
                    "setting_field")),
    ("logs", ("logs",)),
    ("record", ("record",)),
    ("fleet", ("fleet",)),
    ("tasks", ("tasks",)),
    ("dlq", ("dlq",)),
    ("read", ("read",)),
    ("alerts", ("alerts", "autoscale")),
    ("warden", ("warden",)),
    ("serve", ("serve", "dashboard")),
    ("demo", ("demo", "selftest")),
    ("cli", ("cli",)),
    ("package", ("__init__", "__main__")),
]
#: Longest module (lines) before it is reported as doing more than one thing.
MAX_LINES = 300

__doc__ += "\n".join(f"  {i}. {name}: {', '.join(p)}" for i, (name, p) in enumerate(LAYERS))


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return index
    raise ValueError(f"module celery_warden.{module} is in no layer: add it to LAYERS")


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    """The absolute module a ``from`` import names (``None`` when outside the package)."""
    if node.level == 0:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(["celery_warden", *base, *([node.module] if node.module else [])])


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Package modules imported by ``path`` (relative dotted names), at any depth."""
    module = module_name(path)
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def rel_of(absolute: str | None) -> str | None:
        if not absolute or not (absolute == "celery_warden"
                                or absolute.startswith("celery_warden.")):
            return None
        rel = absolute.removeprefix("celery_warden").lstrip(".") or "__init__"
        while rel not in known and "." in rel:  # "from pkg.mod import name" → pkg.mod
            rel = rel.rsplit(".", 1)[0]
        return rel if rel in known else None

    def add(absolute: str | None) -> None:
        rel = rel_of(absolute)
        if rel is not None and rel != module:
            found.add(rel)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, path.name == "__init__.py")
            submodules = [f"{base}.{a.name}" for a in node.names
                          if base and f"{base}.{a.name}".removeprefix("celery_warden.") in known]
            for sub in submodules:  # "from celery_warden import keys" names a module
                add(sub)
            if len(submodules) < len(node.names):  # ... and names defined in ``base``
                add(base)
    return found


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths} | {"__init__"}
    return {module_name(p) if p != PACKAGE / "__init__.py" else "__init__": imports_of(p, known)
            for p in paths}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
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

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer to a higher one, as readable lines."""
    out = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(module):
                out.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                           f"({LAYERS[layer_of(target)][0]})")
    return out


def oversized(limit: int = MAX_LINES) -> list[str]:
    return [f"{module_name(p)}: {n} lines"
            for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > limit]


def problems() -> list[str]:
    edges = graph()
    found = [f"module in no layer: {m}" for m in edges if _unlayered(m)]
    if found:
        return found
    found += [f"import circle: {' -> '.join(c)}" for c in cycles(edges)]
    found += [f"upward import: {line}" for line in upward(edges)]
    return found


def _unlayered(module: str) -> bool:
    try:
        layer_of(module)
    except ValueError:
        return True
    return False


def _print_graph(edges: dict[str, set[str]]) -> None:
    for index, (name, _) in enumerate(LAYERS):
        members = sorted(m for m in edges if not _unlayered(m) and layer_of(m) == index)
        print(f"{index:2d} {name}")
        for m in members:
            print(f"     {m:28s} -> {', '.join(sorted(edges[m])) or '-'}")


def main(argv: Iterable[str] = ()) -> int:
    args = set(argv)
    if "--graph" in args:
        _print_graph(graph())
    if "--sizes" in args:
        print("\n".join(oversized()) or f"no module over {MAX_LINES} lines")
    found = problems()
    for line in found:
        print(line)
    if not found:
        edges = graph()
        print(f"ok: {len(edges)} modules, {sum(map(len, edges.values()))} imports, "
              f"{len(LAYERS)} layers, no circle, no upward import")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
