#!/usr/bin/env python3
"""check_layering.py -- the dependency rule of src/ (DESIGN.md section 2), read from nm.

    python3 check_layering.py --floors FLOORS [--nm NM] [--edges] OBJ_OR_DIR...

Each argument is an object file or a directory scanned recursively for *.o / *.obj (or a
CMake ;-list of them, as ctest passes $<TARGET_OBJECTS:...>). A
module is the object's basename without its object and source extensions (net.c.o -> net).
`nm -P -g` lists each object's external symbols: defined (T D B R C W V G S I A i u) and
undefined (U, and the weak references w / v). Module A uses module B (edge A -> B) when
A references a symbol that B defines; symbols no object defines (libc, BLAS) are ignored.

FLOORS has one line per module, `module floor`, floors numbered bottom-up (0 is the lowest);
`# ...` starts a comment; an optional line `floor N name` names a floor for the messages.
A module may use modules on its own floor or below.

Failures (exit status 1, one block per finding, naming the modules and the symbols):
  (a) upward edge: a module uses a module on a higher floor;
  (b) cycle: the module graph has a cycle (on any floor); for each strongly connected
      component: a shortest cycle through each of its edges, then every edge inside it with
      its symbols (the candidates to cut);
  (c) placement: an object whose module has no line in FLOORS, or a FLOORS line with no
      object (every source file must be placed explicitly).
Exit status 0 with a one-line summary when the graph is clean; 2 for a usage or tool error
(missing file, nm failing, an object with no symbols at all, e.g. an LTO object).
--edges also prints every edge of the graph with its symbols (to inspect the layering).

ctest runs it on $<TARGET_OBJECTS:backprop_objects> (test `layering`, tests/layering/) and on
the seeded objects of tests/layering/selftest/ (tests `layering_selftest_*`), which show that
it fails on a back-edge, on a cycle and on unplaced modules.
"""

import argparse
import os
import re
import subprocess
import sys

DEFINED = set("TDBRCWVGSIAiu")
UNDEFINED = set("Uwv")
OBJ_EXT = (".o", ".obj")
SRC_EXT = (".c", ".cc", ".cpp", ".cxx", ".S", ".s")


class ToolError(Exception):
    pass


def module_of(path):
    name = os.path.basename(path)
    for ext in OBJ_EXT:
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    for ext in SRC_EXT:
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return name


def collect_objects(args):
    objs = []
    # ctest passes $<TARGET_OBJECTS:...> as one argument holding a CMake ;-list
    args = [part for arg in args for part in ([arg] if os.path.exists(arg) else arg.split(";"))]
    for arg in args:
        if not arg:
            continue
        if os.path.isdir(arg):
            for root, dirs, files in os.walk(arg):
                dirs.sort()
                objs += [os.path.join(root, f) for f in sorted(files) if f.endswith(OBJ_EXT)]
        elif os.path.isfile(arg):
            objs.append(arg)
        else:
            raise ToolError(f"no such object file or directory: {arg}")
    if not objs:
        raise ToolError("no object files given")
    return objs


def read_symbols(nm, path):
    """(defined, undefined) external symbol sets of one object, from `nm -P -g`."""
    try:
        out = subprocess.run([nm, "-P", "-g", path], capture_output=True, text=True, check=False)
    except OSError as e:
        raise ToolError(f"cannot run {nm}: {e}")
    if out.returncode != 0:
        raise ToolError(f"{nm} failed on {path}: {out.stderr.strip()}")
    defined, undefined = set(), set()
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        sym, kind = parts[0], parts[1]
        if kind in UNDEFINED:
            undefined.add(sym)
        elif kind in DEFINED:
            defined.add(sym)
    if not defined and not undefined:
        raise ToolError(f"{nm} lists no external symbol in {path} (an LTO object? use gcc-nm)")
    return defined, undefined


def read_floors(path):
    """{module: floor} and {floor: name} from a floors file."""
    floors, names = {}, {}
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ToolError(f"cannot read floors file: {e}")
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        if line[0] == "floor" and len(line) >= 3 and re.fullmatch(r"\d+", line[1]):
            names[int(line[1])] = " ".join(line[2:])
            continue
        if len(line) != 2 or not re.fullmatch(r"\d+", line[1]):
            raise ToolError(f"{path}:{n}: expected `module floor` or `floor N name`: {raw!r}")
        if line[0] in floors:
            raise ToolError(f"{path}:{n}: module {line[0]} placed twice")
        floors[line[0]] = int(line[1])
    return floors, names


def build_graph(objs, nm):
    """{module: {used module: sorted symbols}} and the module list."""
    defs, uses, where = {}, {}, {}
    for path in objs:
        mod = module_of(path)
        if mod in where:
            raise ToolError(f"two objects map to module {mod}: {where[mod]} and {path}")
        where[mod] = path
        defs[mod], uses[mod] = read_symbols(nm, path)
    definers = {}
    for mod, syms in defs.items():
        for s in syms:
            definers.setdefault(s, []).append(mod)
    graph = {mod: {} for mod in where}
    for mod, syms in uses.items():
        for s in syms:
            for dep in definers.get(s, ()):
                if dep != mod:
                    graph[mod].setdefault(dep, []).append(s)
    for mod in graph:
        for dep in graph[mod]:
            graph[mod][dep].sort()
    return graph


def strongly_connected(graph):
    """Tarjan's algorithm (iterative); components with more than one module, sorted."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return sorted(comps)


def shortest_path(graph, src, dst, members):
    """A shortest path src -> ... -> dst inside a component (BFS, sorted neighbours)."""
    prev, queue = {src: None}, [src]
    for node in queue:
        if node == dst:
            path = [node]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            return list(reversed(path))
        for dep in sorted(graph[node]):
            if dep in members and dep not in prev:
                prev[dep] = node
                queue.append(dep)
    return None


def cycles_of(graph, comp):
    """For every edge inside a component, a shortest cycle through it; without repeats,
    rotated to start at the smallest module name, shortest first."""
    members, found = set(comp), set()
    for mod in comp:
        for dep in graph[mod]:
            if dep not in members:
                continue
            back = shortest_path(graph, dep, mod, members)
            cyc = [mod] + back[:-1]
            i = cyc.index(min(cyc))
            found.add(tuple(cyc[i:] + cyc[:i]))
    return sorted(found, key=lambda c: (len(c), c))


def fmt_syms(syms, limit):
    if limit and len(syms) > limit:
        return ", ".join(syms[:limit]) + f", ... ({len(syms)} symbols)"
    return ", ".join(syms)


def check(graph, floors, names, floors_path, limit=0):
    """The violation messages, one string per finding."""
    problems = []

    def fl(mod):
        f = floors[mod]
        return f"floor {f} ({names[f]})" if f in names else f"floor {f}"

    for mod in sorted(set(graph) - set(floors)):
        problems.append(
            f"unplaced module: {mod} has an object but no line in {floors_path} "
            "(add `" + mod + " FLOOR`)"
        )
    for mod in sorted(set(floors) - set(graph)):
        problems.append(
            f"stale floor entry: {mod} is placed in {floors_path} but no object was given "
            "for it (remove the line or add the object)"
        )
    for mod in sorted(graph):
        for dep in sorted(graph[mod]):
            if mod in floors and dep in floors and floors[dep] > floors[mod]:
                problems.append(
                    f"upward edge: {mod} [{fl(mod)}] uses {dep} [{fl(dep)}]: "
                    + fmt_syms(graph[mod][dep], limit)
                )
    for comp in strongly_connected(graph):
        cycles = cycles_of(graph, comp)
        text = f"cycle: {' -> '.join(cycles[0] + (cycles[0][0],))}"
        text += f"\n  component of {len(comp)} modules: {', '.join(comp)}"
        text += f"\n  shortest cycle through each edge of the component ({len(cycles)}):"
        for c in cycles:
            text += "\n    " + " -> ".join(c + (c[0],))
        text += "\n  edges inside the component:"
        members = set(comp)
        for mod in comp:
            for dep in sorted(graph[mod]):
                if dep in members:
                    text += f"\n    {mod} -> {dep}: " + fmt_syms(graph[mod][dep], limit)
        problems.append(text)
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--floors", required=True, help="floor table (module floor per line)")
    ap.add_argument("--nm", default="nm", help="nm program (default: nm)")
    ap.add_argument("--edges", action="store_true", help="also print every edge")
    ap.add_argument("--max-symbols", type=int, default=0,
                    help="list at most this many symbols per edge (0: all)")
    ap.add_argument("objects", nargs="+", help="object files or directories holding *.o")
    a = ap.parse_args(argv)
    try:
        floors, names = read_floors(a.floors)
        graph = build_graph(collect_objects(a.objects), a.nm)
    except ToolError as e:
        print(f"check_layering: {e}", file=sys.stderr)
        return 2
    if a.edges:
        for mod in sorted(graph):
            for dep in sorted(graph[mod]):
                print(f"edge: {mod} -> {dep}: " + fmt_syms(graph[mod][dep], a.max_symbols))
    problems = check(graph, floors, names, a.floors, a.max_symbols)
    n_edges = sum(len(d) for d in graph.values())
    if problems:
        for p in problems:
            print(p)
        print(f"check_layering: FAILED, {len(problems)} violation(s) in {len(graph)} modules, "
              f"{n_edges} edges ({a.floors})")
        return 1
    print(f"check_layering: OK, {len(graph)} modules on {len(set(floors.values()))} floors, "
          f"{n_edges} edges, no upward edge, no cycle ({a.floors})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
