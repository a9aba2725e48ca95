"""@com_google_absl: Abseil compiled from Debian's source, for --config=tsan.

Debian's libabsl-dev is not built with -fsanitize=thread, so under
ThreadSanitizer absl::Mutex's synchronisation would be invisible and every
report about data it guards noise. `--config=tsan` (.bazelrc) therefore sets
`--define=absl=source`, and //third_party:absl then depends on the targets in
ABSL_SOURCE_TARGETS instead of linking the system archives: the same
Abseil release (20220623, Debian's patches applied) built by Bazel from its
own BUILD files, instrumented like our code.

The source is not part of this repository. `scripts/setup.sh --tsan` fetches
it (`apt-get source abseil`) into ~/.cache/forkserver/abseil-src/current;
FORKSERVER_ABSL_SRC=<dir> points elsewhere. Without it this repository is a
stub: its targets exist (so `bazel query 'deps(//...)'` and the plain build
never need the source) and fail with a message saying how to get it if
anything builds them. A downstream workspace needs neither the source nor
this repository unless it builds with --define=absl=source.
"""

# Every Abseil target forkserver's code uses, by package. //third_party:absl
# depends on all of them under --define=absl=source; the stub mirrors them.
ABSL_SOURCE_PACKAGES = {
    "absl/base": ["base", "core_headers"],
    "absl/container": ["flat_hash_map", "flat_hash_set"],
    "absl/flags": ["flag", "parse", "usage"],
    "absl/status": ["status", "statusor"],
    "absl/strings": ["strings", "str_format", "cord"],
    "absl/synchronization": ["synchronization"],
    "absl/time": ["time"],
    "absl/types": ["optional", "span", "variant"],
}

ABSL_SOURCE_TARGETS = [
    "@com_google_absl//%s:%s" % (package, name)
    for package, names in ABSL_SOURCE_PACKAGES.items()
    for name in names
]

_MISSING = ("@com_google_absl: the Abseil source is not installed. Run " +
            "scripts/setup.sh --tsan (it fetches the Debian source package " +
            "into ~/.cache/forkserver/abseil-src), or set " +
            "FORKSERVER_ABSL_SRC to an unpacked Abseil 20220623 tree, then " +
            "bazel shutdown (for this output base) and build again.")

def _source_dir(rctx):
    src = rctx.os.environ.get("FORKSERVER_ABSL_SRC", "")
    if not src:
        home = rctx.os.environ.get("HOME", "")
        if not home:
            return None
        src = home + "/.cache/forkserver/abseil-src/current"
    root = rctx.path(src)
    if not root.get_child("absl").get_child("base").get_child("BUILD.bazel").exists:
        return None
    return root

# Bazel 4.2.3's built-in @platforms predates @platforms//cpu:wasm32 and
# :wasm64, which absl/BUILD.bazel's wasm settings name; everything else in
# Abseil 20220623 builds as it is. Those two settings become the
# --cpu=wasm32/--cpu=wasm64 checks Abseil used before: equally never true
# here.
_WASM_CONSTRAINT = """    constraint_values = [
        "@platforms//cpu:%s",
    ],"""

def _bazel4_absl_build(text):
    for cpu in ["wasm32", "wasm64"]:
        old = _WASM_CONSTRAINT % cpu
        if old not in text:
            fail("absl/BUILD.bazel has no %s constraint to adapt: " % cpu +
                 "not the Abseil release third_party/absl_source.bzl expects")
        text = text.replace(old, '    values = {"cpu": "%s"},' % cpu)
    return text

def _absl_source_impl(rctx):
    rctx.file("WORKSPACE", 'workspace(name = "com_google_absl")\n')
    root = _source_dir(rctx)
    if root:
        # Abseil's own BUILD files; they load @bazel_skylib (Debian's
        # bazel-skylib, see deps.bzl) and use @platforms (built into Bazel).
        for name in ["BUILD.bazel", "LICENSE"]:
            rctx.symlink(root.get_child(name), name)
        absl = root.get_child("absl")
        for child in absl.readdir():
            if child.basename != "BUILD.bazel":
                rctx.symlink(child, "absl/" + child.basename)
        rctx.file("absl/BUILD.bazel", _bazel4_absl_build(rctx.read(absl.get_child("BUILD.bazel"))))
        return
    rctx.file("BUILD.bazel", "")
    for package, names in ABSL_SOURCE_PACKAGES.items():
        lines = [
            "# Stub: Abseil's source is not installed (see third_party/absl_source.bzl).",
            'package(default_visibility = ["//visibility:public"])',
            "genrule(",
            '    name = "missing_source",',
            '    outs = ["missing_source.cc"],',
            "    cmd = %r," % ("echo '%s' >&2; exit 1" % _MISSING),
            ")",
        ]
        for name in names:
            lines.append('cc_library(name = "%s", srcs = [":missing_source"])' % name)
        rctx.file(package + "/BUILD.bazel", "\n".join(lines) + "\n")

# local: looked at again by every new Bazel server, so a source installed
# after a first (stub) fetch is found without `bazel clean --expunge`.
absl_source_repository = repository_rule(
    implementation = _absl_source_impl,
    environ = ["FORKSERVER_ABSL_SRC", "HOME"],
    local = True,
)
