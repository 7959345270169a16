#!/usr/bin/env python3
"""The host's module graph from its `use` lines, and whether it has a circle.

Nodes are the top-level modules of host/src (`admin`, `http`, `plugin`, ...). An edge A -> B is a `use crate::B...` (or `crate::B::...` in code) in a file of A. Comments
and doc links do not count. Prints the edges and exits non-zero with the circle if there is one.
"""
import pathlib
import re
import sys

SRC = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "host/src")
LEAVES: set = set()


def node_of_file(path):
    parts = path.relative_to(SRC).with_suffix("").parts
    if parts in (("lib",), ("main",)):
        return None
    if tuple(parts[:2]) in LEAVES:
        return "::".join(parts[:2])
    return parts[0]


def node_of_path(segments):
    if tuple(segments[:2]) in LEAVES:
        return "::".join(segments[:2])
    return segments[0]


def code_lines(text):
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        yield line.split("//", 1)[0]


def edges():
    found = set()
    pattern = re.compile(r"crate::([a-z_][a-z0-9_]*)(?:::([a-z_][a-z0-9_]*))?")
    for path in sorted(SRC.rglob("*.rs")):
        source = node_of_file(path)
        if source is None:
            continue
        # `super::` from runtime/*.rs to runtime/bindings.rs is an edge to the leaf.
        for line in code_lines(path.read_text()):
            for match in pattern.finditer(line):
                target = node_of_path([s for s in match.groups() if s])
                if target != source:
                    found.add((source, target))
    return found


def find_circle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                circle = visit(nxt)
                if circle:
                    return circle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            circle = visit(node)
            if circle:
                return circle
    return None


def main():
    found = edges()
    graph = {}
    for a, b in found:
        graph.setdefault(a, set()).add(b)
    for a in sorted(graph):
        print(f"{a} -> {', '.join(sorted(graph[a]))}")
    circle = find_circle(graph)
    if circle:
        print("import circle: " + " -> ".join(circle), file=sys.stderr)
        return 1
    print("no import circle between the modules of", SRC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
