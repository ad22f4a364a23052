"""The house's floors, read from the imports (ast): data -> privacy -> models -> evaluation, export, serving -> the run
wing -> cli. A lower floor never imports a higher one, no import circle exists, and only the run wing names the files
inside a run directory."""
import ast

from conftest import ROOT

PACKAGE = ROOT / "tfdpgen"
FLOORS = {"_compat": 0, "data": 0, "privacy": 1, "models": 2, "evaluation": 3, "export": 3, "serving": 3, "runs": 4,
          "cli": 5, "__init__": 6}
RUN_FILES = {"run.json", "split.json", ".secrets.json", "privacy.json", "privacy.txt", "checkpoints", "saved_model",
             "samples.png", "evaluation.json"}


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(tree) -> set:
    """Every tfdpgen module a file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("tfdpgen")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfdpgen"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def package_graph(root=PACKAGE) -> dict:
    """Module -> the package's modules it imports. The package itself is left out: importing any module runs its
    __init__, which sets up Keras first and gathers the top-level names (train_run, ...)."""
    files = {module_name(path): path for path in root.rglob("*.py")}
    return {name: {imported for imported in imports_of(ast.parse(path.read_text()))
                   if imported in files and imported != "tfdpgen"}
            for name, path in files.items() if name != "tfdpgen"}


def floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS["__init__"] if len(parts) == 1 else FLOORS[parts[1]]


def upward_imports(graph) -> list:
    return [(a, b) for a, edges in graph.items() for b in edges if floor(b) > floor(a)]


def circles(graph) -> list:
    """Every import circle, as a list of modules (depth-first search over the package's own imports)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_checks_catch_an_upward_import_and_a_circle():
    graph = {"tfdpgen.privacy.a": {"tfdpgen.models.b"}, "tfdpgen.models.b": {"tfdpgen.runs.c"},
             "tfdpgen.runs.c": {"tfdpgen.privacy.a"}}
    assert upward_imports(graph) == [("tfdpgen.privacy.a", "tfdpgen.models.b"), ("tfdpgen.models.b", "tfdpgen.runs.c")]
    (circle,) = circles(graph)
    assert circle[0] == circle[-1] and set(circle) == set(graph)


def test_no_floor_imports_a_higher_one():
    graph = package_graph()
    assert "tfdpgen.runs.train" in graph and "tfdpgen.models.registry" in graph
    assert upward_imports(graph) == []


def test_no_import_circle_inside_the_package():
    assert circles(package_graph()) == []


def test_only_the_run_wing_names_the_files_of_a_run_directory():
    named = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "runs":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in RUN_FILES:
                named.append((str(path.relative_to(ROOT)), node.value))
    assert named == []
