#!/usr/bin/env python3
"""No import cycles between the modules of a crate.

Cargo forbids cycles between crates; inside one, nothing does. For each
crate of the workspace, this reads every `crate::<module>` path in its
sources and draws an edge from the top-level module a file belongs to
(`src/<module>.rs` or `src/<module>/...`) to the one the path names. A
strongly connected set of two or more modules is a cycle: it is printed,
and the exit status is 1.

Usage: scripts/check-module-cycles.py [workspace root]
"""

import pathlib
import re
import sys

PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
COMMENT = re.compile(r"//.*$", re.MULTILINE)


def top_module(src: pathlib.Path, file: pathlib.Path):
    parts = file.relative_to(src).parts
    if len(parts) == 1:
        name = parts[0][:-3]
        return None if name in ("lib", "main") else name
    # src/bin/* are binaries of their own.
    return None if parts[0] == "bin" else parts[0]


def graph(src: pathlib.Path):
    edges = {}
    for file in sorted(src.rglob("*.rs")):
        module = top_module(src, file)
        if module is None:
            continue
        text = COMMENT.sub("", file.read_text(encoding="utf-8"))
        for target in PATH.findall(text):
            if target != module and ((src / f"{target}.rs").exists() or (src / target).is_dir()):
                edges.setdefault(module, set()).add(target)
    return edges


def cycles(edges):
    """Strongly connected components of two or more nodes (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    nodes = set(edges) | {w for ws in edges.values() for w in ws}
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    failed = False
    for manifest in sorted(root.glob("*/Cargo.toml")):
        src = manifest.parent / "src"
        if not src.is_dir():
            continue
        edges = graph(src)
        for component in cycles(edges):
            failed = True
            members = set(component)
            links = [f"{a} -> {b}" for a in component for b in sorted(edges.get(a, ())) if b in members]
            print(f"{manifest.parent.name}: modules import each other: {', '.join(component)}")
            print("    " + "; ".join(links))
    if not failed:
        print("no import cycles between the modules of any crate")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
