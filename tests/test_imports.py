"""The layers import one way (ARCHITECTURE.md): dialogs <- messages <- bot.

dialogs/ is the pure domain: it imports no text rendering, no shell, no Telegram, no database
driver. messages/ renders dialogs' data: it imports no shell. No module imports itself back
through others (a cycle), not even in a TYPE_CHECKING block; imports sit at the top of a module
(the command line's are the exception: each command loads only what it runs). Read from the
source with ast, so an import hidden in a function or a TYPE_CHECKING block counts too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("dialogs", "messages", "bot")
# What each layer must not import (a prefix of a module name).
FORBIDDEN = {
    "dialogs": ("messages", "bot", "telegram", "jinja2", "markupsafe", "aiosqlite", "asyncpg", "sqlite3",
                "aiohttp", "apscheduler", "tornado"),
    "messages": ("bot", "telegram", "aiosqlite", "asyncpg", "sqlite3", "aiohttp", "apscheduler", "tornado"),
}


# The [train] extra (pyproject.toml): the bot runs without it, so training imports it where it is used.
OPTIONAL_PACKAGES = ("sklearn", "scipy", "numpy")


def _local_imports_allowed(module: str) -> bool:
    """Command lines (bot.cli, bot.*_cli) import inside each command: a command loads only what it runs."""
    return module == "bot.cli" or module.endswith("_cli")


def _optional(node: ast.Import | ast.ImportFrom) -> bool:
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    return all(n.split(".")[0] in OPTIONAL_PACKAGES for n in names)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str:
    """The project module an imported name lives in: `dialogs.engine.step` -> `dialogs.engine`."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, at the top level) for every import of a module."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = set(map(id, tree.body))
    found: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        at_top = id(node) in top
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, at_top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base == "__future__":
                continue
            # `from dialogs import engine` imports the module dialogs.engine.
            found += [(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, node.lineno, at_top)
                      for alias in node.names]
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] in FORBIDDEN))
def test_a_lower_layer_imports_nothing_above_it(module):
    forbidden = FORBIDDEN[module.split(".")[0]]
    wrong = [f"line {line}: {name}" for name, line, _ in _imports(module)
             if any(name == f or name.startswith(f + ".") for f in forbidden)]
    assert not wrong, f"{module} imports against the layers (dialogs <- messages <- bot): {wrong}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_sit_at_the_top_of_the_module(module):
    if _local_imports_allowed(module):
        return
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    hidden = [n.lineno for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
              and n.lineno not in {m.lineno for m in tree.body} and not _optional(n)]
    blocks = [n.lineno for n in tree.body if _is_type_checking_block(n)]
    assert not hidden, f"{module}: imports inside functions or blocks at lines {hidden}"
    assert not blocks, f"{module}: a TYPE_CHECKING block (an import that would run back?) at lines {blocks}"


def test_no_module_imports_itself_back():
    graph = {m: {_resolve(name) for name, _, _ in _imports(m)} & set(MODULES) - {m} for m in MODULES}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}      # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycles.append(path[path.index(other):] + [other])
            elif other not in state:
                visit(other)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_walk_sees_the_layers():
    """The checks above are only as good as the walk: it finds the modules and their imports."""
    assert {"dialogs.engine", "messages", "bot.conversation", "bot.storage"} <= set(MODULES)
    assert "dialogs.engine" in {_resolve(n) for n, _, _ in _imports("bot.conversation")}
    assert "dialogs.model" in {_resolve(n) for n, _, _ in _imports("messages")}


def _private_reaches(module: str) -> list[str]:
    """`from our.module import _name`, and `our_module._name` on a module imported by name."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in LAYERS:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    modules.add(alias.asname or alias.name)
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            modules.update(alias.asname for alias in node.names if alias.asname and alias.name in MODULES)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_reaches_into_another_ones_private_names(module):
    assert not _private_reaches(module), f"{module}: {_private_reaches(module)}"
