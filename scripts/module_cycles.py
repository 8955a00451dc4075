#!/usr/bin/env python3
"""Fails when modules of src/ (and of the workspace's other crates) depend on each other in a cycle.

A module depends on a sibling when any of its files names a path into that sibling
(`use crate::x::..`, `use super::x::..`, or an inline `crate::x::Y`). Siblings are the top-level
modules of src/, and the children of every directory module (e.g. `devchain::chain` and
`devchain::rpc`). Every strongly connected set of siblings is a cycle; one that is not listed in
scripts/module_cycles.allow makes the script print it with the lines behind its edges and exit 1.
Listed cycles that are gone are reported so the list can shrink.

The other crates' modules are named with the crate's directory in front (`devchain: chain rpc`
are the top-level modules `chain` and `rpc` of `devchain/src`).

Usage: scripts/module_cycles.py [SRC_DIR]   (default: src/ and every other crate's src/)
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOW = Path(__file__).resolve().with_suffix(".allow")


def module_path(src: Path, file: Path):
    """The module path of a source file: src/a/b.rs and src/a/b/mod.rs are both ["a", "b"]."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return parts


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def expand_use(tree: str):
    """Expand `a::{b, c::{d, e}}` into ["a::b", "a::c::d", "a::c::e"]."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix: str, s: str):
        depth, start, items = 0, 0, []
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(s[start:i])
                start = i + 1
        items.append(s[start:])
        for item in filter(None, items):
            if "{" in item:
                head, rest = item.split("{", 1)
                walk(prefix + head, rest[: rest.rindex("}")])
            else:
                out.append(prefix + item.split(" as ")[0])

    walk("", tree)
    return out


def references(text: str):
    """(line, path segments) for every `crate::`/`super::`/`self::` path in the file."""
    for m in re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", text):
        line = text.count("\n", 0, m.start()) + 1
        for path in expand_use(m.group(1)):
            yield line, path.split("::")
    for m in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", text):
        if not re.search(r"\buse\s+[^;]*$", text[max(0, m.start() - 200) : m.start()]):
            yield text.count("\n", 0, m.start()) + 1, m.group(1).split("::")


def absolute(current, segments):
    """Resolve a `crate::`/`super::`/`self::` path against the module `current`."""
    base = list(current)
    if segments[0] == "crate":
        base, segments = [], segments[1:]
    while segments and segments[0] in ("super", "self"):
        if segments[0] == "super":
            base = base[:-1]
        segments = segments[1:]
    return base + [s for s in segments if s and s != "*"]


def edges(src: Path):
    files = sorted(p for p in src.rglob("*.rs") if p.name != "main.rs" and "bin" not in p.parts)
    modules = {tuple(module_path(src, f)) for f in files}
    found = defaultdict(list)  # (namespace, from, to) -> ["file:line", ...]
    for f in files:
        here = module_path(src, f)
        text = strip_comments(f.read_text())
        for line, segments in references(text):
            target = absolute(here, segments)
            i = 0
            while i < min(len(here), len(target)) and here[i] == target[i]:
                i += 1
            if i >= len(here) or i >= len(target):
                continue  # a path into the module itself or one of its ancestors
            if tuple(target[: i + 1]) not in modules:
                continue  # an item re-exported by a common ancestor, not a sibling module
            key = ("::".join(here[:i]), here[i], target[i])
            where = f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}:{line}"
            if where not in found[key]:
                found[key].append(where)
    return found


def cycles(found):
    """Strongly connected sets of two or more siblings, per namespace (Tarjan)."""
    graphs = defaultdict(lambda: defaultdict(set))
    for ns, a, b in found:
        graphs[ns][a].add(b)
    result = []
    for ns, graph in graphs.items():
        index, low, stack, on, counter = {}, {}, [], set(), [0]

        def visit(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in graph.get(v, ()):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                scc = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    scc.append(w)
                    if w == v:
                        break
                if len(scc) > 1:
                    result.append((ns, tuple(sorted(scc))))

        for v in list(graph):
            if v not in index:
                visit(v)
    return sorted(result)


def describe(ns, members):
    return (f"{ns}: " if ns else "") + " ".join(members)


def load_allow():
    allowed = set()
    if ALLOW.exists():
        for raw in ALLOW.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            ns, _, names = line.rpartition(":")
            allowed.add((ns.strip(), tuple(sorted(names.split()))))
    return allowed


def crate_roots():
    """(namespace prefix, source directory) of the node and of each other workspace crate."""
    yield "", ROOT / "src"
    for lib in sorted(ROOT.glob("*/src/lib.rs")):
        crate = lib.parent.parent
        if crate.name not in ("fuzz", "target"):
            yield crate.name, lib.parent


def main():
    roots = [("", Path(sys.argv[1]))] if len(sys.argv) > 1 else list(crate_roots())
    found = {}
    for prefix, src in roots:
        for (ns, a, b), where in edges(src).items():
            name = "::".join(filter(None, [prefix, ns]))
            found[(name, a, b)] = where
    allowed = load_allow()
    new = []
    for ns, members in cycles(found):
        known = (ns, members) in allowed
        allowed.discard((ns, members))
        print(f"{'known' if known else 'NEW'} cycle: {describe(ns, members)}")
        for (n, a, b), where in sorted(found.items()):
            if n == ns and a in members and b in members:
                print(f"    {a} -> {b}  ({', '.join(where[:3])}{', ...' if len(where) > 3 else ''})")
        if not known:
            new.append((ns, members))
    for ns, members in sorted(allowed):
        print(f"gone: {describe(ns, members)} (remove it from {ALLOW.name})")
    if new:
        print(f"{len(new)} module cycle(s) not in {ALLOW.name}: break them (move the shared type or "
              "trait to the lower module)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
