"""The module graph of solvers/ is a DAG (imports inside functions count: a circle hidden in a
function is still a circle), and parsing options and the YAML config loads no TensorFlow."""
import ast
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def module_graph(root):
    """{module: set of solvers modules it imports}, every import statement of every file under
    root/solvers counted, wherever it stands. A package's __init__ importing its own children is
    not an edge, nor is the bare package `solvers` (its __init__ is imported by everything)."""
    files = {}
    for path in Path(root, "solvers").rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        files[name.removesuffix(".__init__")] = path

    def resolve(name):  # the module a dotted name lives in (from a import b: a.b or a)
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {resolve(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                # `from pkg import mod` imports pkg.mod; `from mod import name` imports mod
                targets |= {resolve(f"{base}.{a.name}") for a in node.names}
        graph[module] = {t for t in targets if t and t != module and t != "solvers"
                         and not (path.name == "__init__.py" and t.startswith(module + "."))}
    return graph


def first_circle(graph):
    """The first import circle found ([a, b, ..., a]), or None."""
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (circle := visit(target)):
                return circle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (circle := visit(module)):
            return circle
    return None


def test_solvers_has_no_import_circle():
    circle = first_circle(module_graph(REPO))
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_a_circle_hidden_in_a_function_is_found(tmp_path):
    # The check itself can fail: a tiny solvers/ whose only circle is a function-level import.
    package = tmp_path / "solvers" / "search"
    package.mkdir(parents=True)
    (tmp_path / "solvers" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (tmp_path / "solvers" / "run.py").write_text("from solvers.search import seeds\n")
    (package / "seeds.py").write_text("def f():\n    from . import sensitivity\n")
    (package / "sensitivity.py").write_text("def g():\n    from solvers.run import x\n")
    (package / "cost.py").write_text("import solvers.search.seeds\n")
    graph = module_graph(tmp_path)
    assert graph["solvers.search.cost"] == {"solvers.search.seeds"}
    assert first_circle(graph) == ["solvers.run", "solvers.search.seeds",
                                   "solvers.search.sensitivity", "solvers.run"]
    (package / "sensitivity.py").write_text("def g():\n    from solvers import files\n")
    assert first_circle(module_graph(tmp_path)) is None


def _without_tensorflow(tmp_path, *args, code=None):
    """Runs python (a -c `code`, or args) with a `tensorflow` that fails on import first on the
    path: anything that imports TensorFlow (keras and qkeras do) dies with 'tensorflow imported'."""
    fake = tmp_path / "no_tensorflow"
    (fake / "tensorflow").mkdir(parents=True, exist_ok=True)
    (fake / "tensorflow" / "__init__.py").write_text('raise ImportError("tensorflow imported")\n')
    env = {**os.environ, "PYTHONPATH": str(fake)}
    argv = [sys.executable, "-c", code] if code else [sys.executable, *args]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_parsing_every_shipped_config_loads_no_tensorflow(tmp_path):
    code = ("import sys, glob\n"
            "from solvers.config import load_search_space\n"
            "from solvers.networks.layout import layer_names\n"
            "names = [n for group in layer_names() for n in group]\n"
            "for path in ['quantization_config.yaml'] + sorted(glob.glob('configs/*.yaml')):\n"
            "    load_search_space(path, names)\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'qkeras') if m in sys.modules))\n")
    result = _without_tensorflow(tmp_path, code=code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_a_config_mistake_and_help_are_answered_without_tensorflow(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "quantization_config.yaml").read_text() + "objective: {rate: 1}\n")
    result = _without_tensorflow(tmp_path, "autoq.py", "--algo", "random", "--config", str(bad))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert result.stderr.startswith(f"error: {bad}: objective: rate must be > 1")
    for module in ("solvers.search.sensitivity", "solvers.study"):
        result = _without_tensorflow(tmp_path, "-m", module, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr[-2000:]
    result = _without_tensorflow(tmp_path, "-m", "solvers.search.sensitivity", "--config", str(bad))
    assert result.returncode == 2 and "objective: rate must be > 1" in result.stderr
