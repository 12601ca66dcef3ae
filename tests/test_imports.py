"""The layout of ``packrat/``: no import circle, a leaf core, a light client side of the CLI.

The graph is built from the sources (``ast``), so it counts every import:
at module level, inside functions and under ``TYPE_CHECKING``.  What a
command really loads is checked in a fresh interpreter (``sys.modules``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from packrat.core.exits import ExitStatus

PACKAGE = Path(__file__).resolve().parent.parent / "packrat"
HEAVY = ("tornado", "zmq", "requests")


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the packrat modules it imports, anywhere in its source."""
    modules = module_files()

    def known(name: str) -> str:
        while name not in modules:  # an attribute of a module: the module
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names if a.name.startswith("packrat")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("packrat"):
                assert node.level == 0, f"{path}: relative import"
                for alias in node.names:
                    targets.add(known(f"{node.module}.{alias.name}"))
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_packrat():
    found = cycles(import_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_core_imports_only_core_and_the_policy_names():
    """``core`` is the leaf every role builds on (settings check a policy's name)."""
    graph = import_graph()
    allowed = ("packrat", "packrat.policies")
    for module, targets in graph.items():
        if module.startswith("packrat.core"):
            outside = {t for t in targets if not t.startswith("packrat.core") and t not in allowed}
            assert not outside, f"{module} imports {sorted(outside)}"


def loaded_after(code: str) -> list[str]:
    """The heavy top-level packages a fresh interpreter has loaded after ``code``."""
    probe = (
        "import io, json, sys, contextlib\n"
        f"{code}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_core_loads_no_tornado_zmq_or_requests():
    modules = sorted(name for name in module_files() if name.startswith("packrat.core"))
    code = "\n".join(f"import {name}" for name in modules)
    code += "\npackrat.core.settings.load(None)"  # its checks import what they need
    assert loaded_after(code) == []


def run_command_then_list(argv: list[str], expected: ExitStatus) -> list[str]:
    """Run ``packrat ARGV`` in a fresh interpreter, check its status, list what it loaded."""
    code = (
        "from packrat.cli.main import main\n"
        f"sys.argv = {['packrat', *argv]!r}\n"
        "quiet = io.StringIO()\n"
        "with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):\n"
        "    try:\n"
        "        status = main()\n"
        "    except SystemExit as e:\n"
        "        status = e.code\n"
        f"assert status == {int(expected)}, status\n"
    )
    return loaded_after(code)


@pytest.mark.parametrize("option", ["--version", "--help"])
def test_version_and_help_load_none_of_them(option):
    assert run_command_then_list([option], ExitStatus.OK) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["exists", "k"],
        ["get", "k", "-o", "{tmp}/out"],
        ["put", "{tmp}/in", "k"],
        ["rm", "k"],
        ["stat"],
    ],
)
def test_client_commands_load_neither_tornado_nor_zmq(argv, tmp_path, free_tcp_port):
    """Each runs for real against a closed port: its whole path up to the network runs
    (on the standard library's http.client: requests is not loaded either)."""
    (tmp_path / "in").write_bytes(b"x")
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    argv += ["--url", f"http://127.0.0.1:{free_tcp_port}"]
    assert run_command_then_list(argv, ExitStatus.UNAVAILABLE) == []
