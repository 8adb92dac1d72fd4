"""The package's import graph, read from the source (module- and function-level imports alike):
no module reaches itself through its imports, and the stages import one way."""
from __future__ import annotations

import ast
from pathlib import Path

import cbns

ROOT = Path(cbns.__file__).parent


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: the cbns modules it imports}``; importing ``a.b.c`` also runs packages ``a`` and ``a.b``."""
    known = modules()

    def owner(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in known.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {owner(a.name) for a in node.names if a.name.startswith("cbns")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cbns"):
                targets |= {owner(f"{node.module}.{a.name}") for a in node.names}
        for target in list(targets):
            pieces = target.split(".")
            targets |= {".".join(pieces[:i]) for i in range(1, len(pieces))
                        if not name.startswith(".".join(pieces[:i]) + ".")}
        graph[name] = targets - {name, ""}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), or a module importing itself."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_reaches_itself_through_its_imports():
    assert cycles(import_graph()) == []


def test_stages_import_one_way():
    graph = import_graph()

    def imports(stage: str, other: str) -> list[str]:
        return sorted(m for m, targets in graph.items() if m.startswith(stage)
                      for t in targets if t == other or t.startswith(other + "."))

    assert imports("cbns.negatives", "cbns.objective") == []  # the objective uses the sources
    assert imports("cbns.training", "cbns.serve") == []
    assert imports("cbns.evaluation", "cbns.serve") == []
    assert imports("cbns.ranking", "cbns.evaluation") == [] and imports("cbns.ranking", "cbns.serve") == []
    library = [m for m in graph if not m.startswith("cbns.cli") and m != "cbns.__main__"]
    assert [m for m in library if any(t.startswith("cbns.cli") for t in graph[m])] == []


def test_the_trainer_is_the_step_and_the_loop():
    lines = (ROOT / "training" / "trainer.py").read_text().splitlines()
    assert len(lines) < 250
