"""The fixed code of a generated DAG, as text taken from real modules.

The code around the PIPELINE literal is the text of `dag_runtime.py` and of the builder
modules (`builders/`) of the executors the pipeline uses, with the functions and constants of
`levelflow.executors` those modules import. These are ordinary modules, linted, type-checked
and imported by the tests; the DAG holds their text, so that it stays one self-contained file
that imports nothing from levelflow. One rule says what of a module's text the DAG holds
(`module_text`):

- dropped, as they serve the module form only: the module docstring, the
  `from __future__` import (the DAG has its own, first) and every import from levelflow;
- its leading import statements (Airflow, Google) go to the DAG's import block, the rest of
  the module follows as it is written, comments included;
- each name a builder imports from `levelflow.executors` brings the text of that function or
  literal constant of executors.py, and of those of executors.py that it uses in turn, each
  once per DAG, in executors.py's order, before the builder's own code.

A builder module imports from levelflow only `dag_runtime` (names the DAG itself defines) and
`levelflow.executors`; anything else would not exist in the DAG, and is refused here.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from ... import executors

HERE = Path(__file__).parent
RUNTIME = HERE / "dag_runtime.py"
BUILDERS = HERE / "builders"
EXECUTORS_MODULE = "levelflow.executors"
RUNTIME_MODULE = "levelflow.backends.composer.dag_runtime"


@dataclass(frozen=True)
class ModuleText:
    imports: tuple[str, ...]  # its leading import statements, those of the module form dropped
    body: str  # the rest of its text, after its leading imports
    executors_names: tuple[str, ...]  # the names it imports from levelflow.executors


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _module_form_only(node: ast.stmt, path: Path) -> bool:
    """Whether an import statement serves the module form only (`__future__`, levelflow)."""
    if isinstance(node, ast.Import):
        modules = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        modules = ["levelflow" if node.level else node.module or ""]
    else:
        return False
    if all(module == "__future__" for module in modules):
        return True
    ours = [module for module in modules if module == "levelflow" or module.startswith("levelflow.")]
    if not ours:
        return False
    if not isinstance(node, ast.ImportFrom) or node.module not in (EXECUTORS_MODULE, RUNTIME_MODULE):
        raise ValueError(f"{path.name}: line {node.lineno}: a module the DAG includes imports from levelflow only "
                         f"`from {RUNTIME_MODULE} import ...` and `from {EXECUTORS_MODULE} import ...`")
    return True


@functools.lru_cache(maxsize=None)
def module_text(path: Path) -> ModuleText:
    """What a generated DAG holds of a module (the rule of the module docstring)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    body = ast.parse(text).body
    end = 0  # the last line of the docstring and leading imports
    if body and _is_docstring(body[0]):
        end, body = body[0].end_lineno or 0, body[1:]
    imports, names = [], []
    while body and isinstance(body[0], (ast.Import, ast.ImportFrom)):
        node, body = body[0], body[1:]
        end = node.end_lineno or 0
        if isinstance(node, ast.ImportFrom) and node.module == EXECUTORS_MODULE:
            names += [alias.name for alias in node.names]
        if not _module_form_only(node, path):
            imports.append("".join(lines[node.lineno - 1:node.end_lineno]).rstrip("\n"))
    if any(_module_form_only(node, path) for node in body if isinstance(node, (ast.Import, ast.ImportFrom))):
        raise ValueError(f"{path.name}: imports from levelflow must come first, with the module's other imports")
    return ModuleText(tuple(imports), "".join(lines[end:]).lstrip("\n"), tuple(names))


def _first_line(node: ast.stmt) -> int:
    return min([node.lineno] + [decorator.lineno for decorator in getattr(node, "decorator_list", [])])


@functools.lru_cache(maxsize=None)
def executors_definitions() -> dict[str, tuple[str, frozenset[str]]]:
    """Name -> (text, the names it uses) of each top-level function and literal constant of
    levelflow.executors, in the module's order: what a builder may take from there."""
    text = Path(executors.__file__).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef):
            name = node.name
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                ast.literal_eval(node.value)
            except ValueError:
                continue
            name = node.targets[0].id
        else:
            continue
        used = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name)) - {name}
        found[name] = ("".join(lines[_first_line(node) - 1:node.end_lineno]), used)
    return found


def executors_source(names: tuple[str, ...], done: set[str]) -> list[str]:
    """The text of these names of levelflow.executors and of those they use, not yet in `done`."""
    definitions = executors_definitions()
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in definitions:
            raise ValueError(f"{EXECUTORS_MODULE}.{name} is not a function or a literal constant: a DAG cannot hold it")
        if name not in wanted and name not in done:
            wanted.add(name)
            pending += [used for used in definitions[name][1] if used in definitions]
    done |= wanted
    return [text for name, (text, _) in definitions.items() if name in wanted]


def runtime_text() -> str:
    """The text of dag_runtime.py as the DAG holds it, its marker lines still in place."""
    runtime = module_text(RUNTIME)
    if runtime.executors_names:
        raise ValueError("dag_runtime.py imports nothing from levelflow: the generated DAG has no levelflow")
    return "\n".join(runtime.imports) + "\n\n" + runtime.body


def builders_text(modules: list[str]) -> tuple[list[str], list[str]]:
    """(import statements, code chunks) of these builder modules, in this order."""
    imports: list[str] = []
    chunks: list[str] = []
    done: set[str] = set()
    for name in modules:
        module = module_text(BUILDERS / f"{name}.py")
        imports += [line for line in module.imports if line not in imports]
        chunks.append("\n\n".join(executors_source(module.executors_names, done) + [module.body]))
    return imports, chunks


def fill(text: str, marker: str, value: str) -> str:
    """Replace the one line of `text` that ends in the marker comment `marker` by `value`."""
    lines = text.splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if line.rstrip("\n").endswith(marker)]
    if len(found) != 1:
        raise ValueError(f"{marker}: {len(found)} marker lines, not one")
    lines[found[0]] = value + "\n"
    return "".join(lines)
