#!/usr/bin/env python3
"""Fails when a package depends on a package of a higher layer, or when
the packages' dependency graph has a cycle.

It reads the real build graph: `bazel query 'deps(//..., 1)'` gives every
target's direct dependencies (source files and generated headers
included), and each edge between two of our packages must go downwards
in LAYERS. A package missing from LAYERS fails too, so a new package gets
a deliberate place. docs/architecture.md draws the same picture.

  scripts/check_layering.py             check the workspace
  scripts/check_layering.py --self-test check the checker on a small graph
"""

import re
import subprocess
import sys

# Lower numbers are lower layers. An edge from package A to package B is
# allowed when B's layer is strictly lower than A's (or A == B).
LAYERS = {
    "third_party": 0,
    "proto": 1,
    "profiles": 1,  # shipped sandbox profiles (textproto data)
    "lib/base": 1,  # (beside proto: neither uses the other)
    "lib/memory": 1,
    "forkserver/child/sandbox": 2,
    "lib/ipc": 2,
    "lib/registry": 2,
    "forkserver/child": 3,
    "forkserver/sandbox": 3,
    "forkserver": 4,
    "lib/client": 5,
    "lib/process": 6,
    "lib/pool": 7,
    "lib": 8,
    "lib/celery": 9,
    "tools": 10,
    "tools/celery": 11,
    # Tests and benchmarks sit on top; their helpers first.
    "tests/proto": 12,
    "tests/support": 12,
    "tests/bench": 13,
}
TOP_PREFIXES = ("tests/",)  # every other tests/ package: layer 14
TOP_LAYER = 14

EDGE = re.compile(r'^\s*"(?P<src>[^"]+)"\s*->\s*"(?P<dst>[^"]+)"')


def package_of(label):
    """'//lib/ipc:seqpacket' -> 'lib/ipc'; None for external labels."""
    if not label.startswith("//"):
        return None
    return label[2:].split(":", 1)[0]


def layer_of(package):
    if package in LAYERS:
        return LAYERS[package]
    if package.startswith(TOP_PREFIXES):
        return TOP_LAYER
    return None


def find_cycle(graph):
    """A list of packages forming a cycle in {pkg: set(pkgs)}, or None."""
    state = {}  # 1 = on the DFS stack, 2 = done
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def check(edges):
    """Returns a list of problems for (src_label, dst_label) edges."""
    problems = []
    graph = {}
    for src, dst in edges:
        a, b = package_of(src), package_of(dst)
        if a is None or b is None or a == b:
            continue
        graph.setdefault(a, set()).add(b)
        la, lb = layer_of(a), layer_of(b)
        for pkg, layer in ((a, la), (b, lb)):
            if layer is None:
                problems.append(
                    "package //%s has no layer in scripts/check_layering.py"
                    % pkg)
        if la is not None and lb is not None and lb >= la:
            problems.append(
                "%s (layer %d) depends on %s (layer %d): dependencies must "
                "go down" % (src, la, dst, lb))
    cycle = find_cycle(graph)
    if cycle:
        problems.append("package cycle: " + " -> ".join(cycle))
    return sorted(set(problems))


def query_edges():
    out = subprocess.run(
        ["bazel", "query", "--noshow_progress", "--noimplicit_deps",
         "--notool_deps", "deps(//..., 1)", "--output=graph",
         "--nograph:factored"],
        check=True, capture_output=True, text=True).stdout
    edges = []
    for line in out.splitlines():
        m = EDGE.match(line)
        if m:
            edges.append((m.group("src"), m.group("dst")))
    if not edges:
        raise SystemExit("check_layering: bazel query returned no edges")
    return edges


def self_test():
    good = [("//lib/ipc:seqpacket", "//lib/base:unique_fd"),
            ("//lib/pool:pool", "//lib/process:process"),
            ("//lib/process:process", "//lib/ipc:seqpacket")]
    assert check(good) == [], check(good)
    reverse = good + [("//lib/base:unique_fd", "//lib/pool:pool")]
    assert any("dependencies must go down" in p for p in check(reverse))
    assert any("cycle" in p for p in check(reverse))
    sideways = [("//lib/ipc:seqpacket", "//lib/registry:registry")]
    assert check(sideways), "same-layer packages must not depend on each other"
    unknown = [("//newpkg:x", "//lib/base:unique_fd")]
    assert any("no layer" in p for p in check(unknown))
    print("check_layering self-test: ok")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    edges = query_edges()
    problems = check(edges)
    packages = {package_of(l) for e in edges for l in e} - {None}
    if problems:
        print("layering: %d problem(s)" % len(problems))
        for p in problems:
            print("  " + p)
        return 1
    print("layering: %d packages, %d edges, all dependencies go down, "
          "no cycles" % (len(packages), len(edges)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
