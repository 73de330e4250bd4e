"""Static rules on the script's text (no run): (e) imports, (h) hard-coded hyperparameters, the script part of (g)
(no line the public log parser would read as a val line), and the public repo's format (work done at import)."""
import ast
import sys

from tools.preflight.common import ALLOWED_ENV, PUBLIC_VAL_RE

CLI_MODULES = {"argparse", "optparse", "getopt", "click", "typer", "fire", "absl", "hydra", "omegaconf", "docopt",
               "jsonargparse", "simple_parsing", "tyro"}
CODE_LOADERS = {"runpy.run_path", "runpy.run_module", "importlib.util.spec_from_file_location",
                "importlib.machinery.SourceFileLoader", "importlib.util.spec_from_loader"}


def _dotted(node):
    """'a.b.c' for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def _const_str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def check_imports(tree):
    """(e): problems as 'line N: ...' strings."""
    allowed = set(sys.stdlib_module_names) | {"torch", "triton"}
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            problems += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] not in allowed]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append(f"line {node.lineno}: relative import from {'.' * node.level}{node.module or ''}")
            elif node.module.split(".")[0] not in allowed:
                problems.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func) or ""
            if name.split(".")[-1] in ("__import__", "import_module"):
                arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
                module = _const_str(arg)
                if module is None:
                    problems.append(f"line {node.lineno}: {name}() of a name computed at run time")
                elif module.split(".")[0] not in allowed:
                    problems.append(f"line {node.lineno}: {name}({module!r})")
            elif name in CODE_LOADERS:
                problems.append(f"line {node.lineno}: {name}() loads code from another file")
    return problems


def check_hardcoded(tree):
    """(h): problems as 'line N: ...' strings."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    os_names, sys_names, environ_names, getenv_names, argv_names = {"os"}, {"sys"}, set(), set(), set()
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in ("os", "sys"):  # `import os` and `import sys` keep the default names
                    (os_names if a.name == "os" else sys_names).add(a.asname)
                if a.name.split(".")[0] in CLI_MODULES:
                    problems.append(f"line {node.lineno}: import {a.name} (command-line parsing)")
        elif isinstance(node, ast.ImportFrom) and not node.level:
            for a in node.names:
                target = {"os": {"environ": environ_names, "getenv": getenv_names, "environb": environ_names},
                          "sys": {"argv": argv_names}}.get(node.module, {}).get(a.name)
                if target is not None:
                    target.add(a.asname or a.name)
            if node.module.split(".")[0] in CLI_MODULES:
                problems.append(f"line {node.lineno}: from {node.module} import ... (command-line parsing)")

    def is_attr(node, names, attrs):
        return ((isinstance(node, ast.Attribute) and node.attr in attrs and isinstance(node.value, ast.Name)
                 and node.value.id in names))

    def key_problem(node, key_node, what):
        key = _const_str(key_node)
        if key is None:
            return f"line {node.lineno}: {what} with a key computed at run time"
        if key not in ALLOWED_ENV:
            return f"line {node.lineno}: {what} reads {key!r}"
        return None

    for node in ast.walk(tree):
        if is_attr(node, sys_names, ("argv",)) or (isinstance(node, ast.Name) and node.id in argv_names
                                                   and isinstance(node.ctx, ast.Load)):
            p = parents.get(node)
            index = p.slice if isinstance(p, ast.Subscript) and p.value is node else None
            value = (index.value if isinstance(index, ast.Constant) else -index.operand.value
                     if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub)
                     and isinstance(index.operand, ast.Constant) else None)
            if value in (0, -1) and not isinstance(value, bool):
                continue
            if isinstance(p, ast.Call) and isinstance(p.func, ast.Name) and p.func.id == "len":
                continue
            problems.append(f"line {node.lineno}: reads sys.argv beyond sys.argv[-1] (the trial count), sys.argv[0] "
                            "and len(sys.argv)")
        elif is_attr(node, os_names, ("environ", "environb")) or (isinstance(node, ast.Name) and node.id in environ_names
                                                                  and isinstance(node.ctx, ast.Load)):
            p = parents.get(node)
            problem = f"line {node.lineno}: uses the whole os.environ"
            if isinstance(p, ast.Subscript) and p.value is node:
                problem = None if isinstance(p.ctx, (ast.Store, ast.Del)) else key_problem(node, p.slice, "os.environ[...]")
            elif isinstance(p, ast.Attribute) and isinstance(parents.get(p), ast.Call) and parents[p].func is p:
                call = parents[p]
                if p.attr in ("get", "pop", "__getitem__", "__contains__"):
                    problem = key_problem(node, call.args[0] if call.args else None, f"os.environ.{p.attr}()")
                elif p.attr in ("setdefault", "update") and isinstance(parents.get(call), ast.Expr):
                    problem = None  # sets variables for libraries; its value is not used
            elif (isinstance(p, ast.Compare) and node in p.comparators
                  and all(isinstance(o, (ast.In, ast.NotIn)) for o in p.ops)):
                problem = key_problem(node, p.left, "'...' in os.environ")
            if problem:
                problems.append(problem)
        elif isinstance(node, ast.Call) and (is_attr(node.func, os_names, ("getenv", "getenvb"))
                                             or (isinstance(node.func, ast.Name) and node.func.id in getenv_names)):
            problem = key_problem(node, node.args[0] if node.args else None, "os.getenv()")
            if problem:
                problems.append(problem)
    return problems


def script_val_lines(code):
    """(g): lines of the script that the public log parser would read as val lines."""
    return [f"line {i}: {line.strip()[:100]}" for i, line in enumerate(code.splitlines(), 1) if PUBLIC_VAL_RE.search(line)]


def _is_main_guard(node):
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and _dotted(node.test.left) == "__name__"
            and any(_const_str(c) == "__main__" for c in node.test.comparators))


def import_time_work(tree):
    """What a script does at import (outside functions, classes and `if __name__ == "__main__"`) that the harness's
    format does in main(): parse the command line, start processes or CUDA, train. As 'line N: ...' strings."""
    found = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or _is_main_guard(stmt):
            continue
        for node in ast.walk(stmt):
            func = node.func if isinstance(node, ast.Call) else None
            last = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            name = _dotted(func) or f"...{last}" if func is not None else ""
            if last in ("parse_args", "parse_known_args"):
                found.append(f"line {node.lineno}: parses the command line ({name})")
            elif last in ("init_process_group", "cuda", "set_device") or name.startswith("torch.cuda."):
                found.append(f"line {node.lineno}: starts distributed or CUDA work ({name})")
            elif last in ("backward", "step") and isinstance(stmt, (ast.For, ast.While)):
                found.append(f"line {stmt.lineno}: a training loop")
                break
    return list(dict.fromkeys(found))


def public_format_problem(tree, script):
    """One message if the script is in the public repo's format (runs at import, no main(num_trials)), else None."""
    work = import_time_work(tree)
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    if not work:
        return None
    what = "; ".join(work[:3]) + ("" if mains else "; no main(num_trials)")
    return (f"{script}: a script in the public repo's format, which runs when imported ({what}). The harness imports a "
            "script without running it and calls its main(num_trials), so it did not import this one. To check it "
            "here, port it into a copy of the harness's script: python -m tools.new NAME AGENT, then put its optimizer "
            "classes in the Optimizer section and its hyperparameters, schedules, val steps, lookahead, EMA and "
            "readouts in Init & Optim Hyperparams (docs/writing-an-approach.md); the seed comes from SEED=, not a "
            "flag (RULES 2.5)")

