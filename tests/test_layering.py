"""The import graph follows the floors documented in docs/architecture.md ("Layering").

Every import in every module counts: module level, inside functions, under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own floor and the floors below, never one above.
FLOORS: list[set[str]] = [
    {
        "otel_sysops",
        "errors",
        "findings",
        "health",
        "breaker",
        "redact",
        "http",
        "catalog",
        "_logging",
        "_memory",
        "_private",
    },
    {"settings"},
    {"resource", "store", "churn", "plugin", "reader", "selftelemetry", "selfwatch", "snapshot", "sinks"},
    {"pipeline"},
    {"alerts", "logs", "inventory", "bridge", "rules", "api"},
    {"app", "agent", "services", "hub"},
    {"cli", "_docs", "__main__"},
]
PLUGINS = {"instrumentation", "analyzers"}  # loaded through entry points, never imported by the core

# Known exceptions, each with its reason; the lead removes them as the code moves.
ALLOWED = {
    # settings validate user log patterns with the logs package's compiler (lazy import).
    ("settings", "logs"),
    # `otel-sysops analyze` replays detectors directly (being reworked separately).
    ("cli", "analyzers"),
}


def unit(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "otel_sysops":
        return parts[0]
    return parts[1] if len(parts) > 1 else "otel_sysops"


def imports() -> dict[str, set[str]]:
    """Map each module of otel_sysops/, instrumentation/, analyzers/ to the project modules it imports."""
    out: dict[str, set[str]] = defaultdict(set)
    for top in ("otel_sysops", *sorted(PLUGINS)):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts.pop()
            module = ".".join(parts)
            package = parts if is_pkg else parts[:-1]
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                targets: list[str] = []
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = package[: len(package) - node.level + 1]
                        targets = [".".join([*base, *([node.module] if node.module else [])])]
                    elif node.module:
                        targets = [node.module]
                out[module].update(t for t in targets if t.split(".")[0] in {"otel_sysops", *PLUGINS})
    return out


def floor_of(name: str) -> int:
    for level, names in enumerate(FLOORS):
        if name in names:
            return level
    raise AssertionError(f"{name}: not on any floor; add it to FLOORS and docs/architecture.md")


def test_every_core_module_sits_on_a_floor() -> None:
    for module in imports():
        if unit(module) not in PLUGINS:
            floor_of(unit(module))


def test_no_import_reaches_a_higher_floor_or_a_plugin() -> None:
    upward = []
    for module, targets in imports().items():
        source = unit(module)
        for target in targets:
            dest = unit(target)
            if source == dest or (source, dest) in ALLOWED:
                continue
            if source in PLUGINS:
                # Plugins build on the core's lower floors, never on the agent or the CLI.
                if dest not in PLUGINS and floor_of(dest) >= floor_of("app"):
                    upward.append(f"{module} -> {target}")
                continue
            if dest in PLUGINS or floor_of(dest) > floor_of(source):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_the_package_graph_has_no_cycle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in imports().items():
        for target in targets:
            if unit(module) != unit(target) and (unit(module), unit(target)) not in ALLOWED:
                graph[unit(module)].add(unit(target))
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "cycle: " + " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_domain_packages_never_see_the_agent() -> None:
    for module, targets in imports().items():
        if unit(module) in {"alerts", "bridge", "logs", "store", "sinks", "inventory"}:
            assert not {t for t in targets if unit(t) in {"app", "agent", "services", "hub"}}, module


def test_across_packages_only_public_faces_are_imported() -> None:
    private = []
    for module, targets in imports().items():
        for target in targets:
            if unit(module) == unit(target):
                continue
            # Below the package: otel_sysops.<package>.<module>, instrumentation.<module>.
            below = target.split(".")[2:] if target.startswith("otel_sysops.") else target.split(".")[1:]
            if any(part.startswith("_") for part in below):
                private.append(f"{module} -> {target}")
    assert private == []
