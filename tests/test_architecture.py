"""The layers of docs/architecture.md, held against the code: no import runs back up, none closes a circle.

Every ``import geobench...`` is read from the source, inside functions too, so an import moved
into a function to dodge a circle still counts.
"""

import ast
from pathlib import Path

import geobench

PACKAGE = Path(geobench.__file__).parent

# Rank of each top-level room (docs/architecture.md, top to bottom): a module may import its own
# room or a lower rank, never a higher one.
LAYERS = {
    "__main__": 7,
    "cli": 6,
    "battery": 5,
    "reproduce": 5,
    "report": 4,
    "experiments": 3,
    "toy": 2,
    "bandits": 2,
    "distill": 2,
    "llm": 2,
    "concepts": 2,
    "integrations": 2,
    "objectives": 1,
    "config": 1,
    "results": 1,
    "executor": 1,
    "trackers": 1,
    "errors": 0,
    "nn": 0,
    "progress": 0,
    "lazy": 0,
    "identity": 0,
}
# Sideways imports between rooms of one layer: one-way, as the page lists them.
SIDEWAYS = {("concepts", "bandits"), ("integrations", "llm")}


def _module(path: Path) -> str:
    parts = ["geobench", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every geobench module ``path`` imports, at any depth of its code. ``from pkg import mod``
    imports the module ``pkg.mod``; ``from pkg import name`` imports ``pkg``'s face."""
    found = set()
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("geobench")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.startswith("geobench"):
                for alias in node.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path, set(files)) if m in files and m != name} for name, path in files.items()}


def _room(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_every_room_has_a_layer():
    rooms = {_room(m) for m in _graph()} - {"__init__"}
    assert rooms <= set(LAYERS), f"rooms without a layer in docs/architecture.md: {sorted(rooms - set(LAYERS))}"


def test_no_import_runs_back_up_a_layer():
    upward = [
        f"{m} -> {t}"
        for m, targets in _graph().items()
        for t in targets
        if _room(m) != "__init__"
        and _room(m) != _room(t)
        and (
            LAYERS[_room(t)] > LAYERS[_room(m)]
            or (LAYERS[_room(t)] == LAYERS[_room(m)] and (_room(m), _room(t)) not in SIDEWAYS)
        )
    ]
    assert not upward, upward


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_import_circle():
    """No module reaches itself through imports, a package's face (``__init__.py``) included:
    a module that imports its own package's face while the face imports it is a circle too."""
    graph = _graph()
    circles = sorted(m for m in graph if m in _reach(graph, m))
    assert not circles, circles
