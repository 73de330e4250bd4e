"""The tools import one another without a cycle: a module of tools/ (or tools/preflight/) never imports, directly
or through others, a module that imports it. A cycle works only as long as every name is looked up late, and
breaks the day one `from X import name` runs first (trajectory.py and verdicts.py had one until issue 32)."""
import ast
import os

from tools_logtext import ROOT


def module_imports():
    """{module: set of tools modules it imports at any level of its code}, from the source, nothing run."""
    graph, sources = {}, {}
    for folder in ("tools", os.path.join("tools", "preflight")):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if not name.endswith(".py"):
                continue
            module = ".".join(folder.split(os.sep) + [name[:-3]]).removesuffix(".__init__")
            sources[module] = ast.parse(open(os.path.join(ROOT, folder, name)).read())
    for module, tree in sources.items():
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tools"):
                # `from tools.preflight import runs` imports the module runs, not names of the package's __init__
                subs = {f"{node.module}.{a.name}" for a in node.names} & sources.keys()
                deps |= subs or {node.module}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("tools")}
        graph[module] = deps - {module}
    return graph


def find_cycle(graph):
    """One cycle as a list of modules (first == last), or None."""
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                return path[path.index(d):] + [d]
            if d not in state and (cycle := visit(d)):
                return cycle
        state[m] = "done"
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_tools_have_no_import_cycle():
    graph = module_imports()
    assert "tools.preflight.trajectory" in graph and "tools.preflight.verdicts" in graph["tools.preflight.core"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
