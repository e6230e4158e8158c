#!/usr/bin/env python3
"""Fails when a module of src/ imports a module that imports it back (directly or through others).

Reads every `crate::…` path in src/**/*.rs (in `use` items and inline paths, tests excluded),
maps it to the file that defines the longest matching module, and looks for cycles in the
resulting file graph. `mod` declarations (parent → child) are not imports and are ignored, and
so are `super::` paths to a file's own parent.

    scripts/check_module_cycles.py          # prints the graph's cycles, exit 1 if any
"""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def module_of(path: Path) -> tuple:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_tests(text: str) -> str:
    """Drops `#[cfg(test)] mod … { … }` blocks and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def crate_paths(text: str):
    """Every `crate::a::b…` path, with `use` groups expanded one level."""
    for m in re.finditer(r"crate((?:::\w+)+)(::\{([^}]*)\})?", text):
        base = [p for p in m.group(1).split("::") if p]
        yield base
        if m.group(3):
            for item in m.group(3).split(","):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self":
                    yield base + [p for p in item.split("::") if p and p != "{"]


def main() -> int:
    files = {module_of(p): p for p in SRC.rglob("*.rs")}
    edges = {}
    for mod, path in files.items():
        text = strip_tests(path.read_text())
        targets = set()
        for segments in crate_paths(text):
            for n in range(len(segments), 0, -1):
                cand = tuple(segments[:n])
                if cand in files:
                    if cand != mod and cand != mod[: len(cand)]:
                        targets.add(cand)
                    break
        edges[mod] = targets

    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    name = lambda m: str(files[m].relative_to(SRC.parent))
    if sccs:
        for comp in sccs:
            print("import cycle:", " <-> ".join(sorted(name(m) for m in comp)))
        return 1
    print(f"no import cycles among {len(files)} modules ({sum(map(len, edges.values()))} imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
