"""Repositories forkserver needs under Bazel 4 with no network.

A downstream WORKSPACE uses forkserver like this:

    local_repository(name = "forkserver", path = "/path/to/forkserver")
    load("@forkserver//:deps.bzl", "forkserver_dependencies")
    forkserver_dependencies(forkserver_path = "/path/to/forkserver")

The system libraries (Abseil, Protobuf, Boost, GoogleTest) come from Debian
packages and are wrapped in //third_party; scripts/setup.sh installs them.

Only the ThreadSanitizer build (--config=tsan, --define=absl=source) compiles
Abseil from source instead: @com_google_absl and @bazel_skylib are declared
here but fetched lazily, so nothing else needs them or the source
(third_party/absl_source.bzl).
"""

load("//third_party:absl_source.bzl", "absl_source_repository")

def _maybe_local(name, path):
    if not native.existing_rule(name):
        native.local_repository(name = name, path = path)

def forkserver_dependencies(forkserver_path = "."):
    """Declares @rules_cc, @rules_java and @remote_coverage_tools locally.

    Also @com_google_absl (Abseil from Debian's source, or a stub when it
    is not installed) and @bazel_skylib, which only --define=absl=source
    builds use; a workspace that declares its own keeps its own.

    Args:
      forkserver_path: where the forkserver checkout is, relative to the
        calling workspace's root or absolute.
    """

    # Debian's bazel-rules-cc is too new for Bazel 4.2.3; this stand-in
    # re-exports the native rules.
    _maybe_local("rules_cc", forkserver_path + "/third_party/rules_cc")

    # Registered JDK toolchains need @rules_java even in C++-only builds.
    _maybe_local("rules_java", "/usr/share/bazel/rules/java")

    # Every test target depends on it; `bazel test` needs only the labels.
    _maybe_local("remote_coverage_tools", forkserver_path + "/third_party/remote_coverage_tools")

    # Abseil from source for --config=tsan: the unpacked tree from
    # `scripts/setup.sh --tsan`, or a stub whose targets say how to get it.
    if not native.existing_rule("com_google_absl"):
        absl_source_repository(name = "com_google_absl")

    # Abseil's BUILD files load @bazel_skylib//lib:selects.bzl: Debian's
    # bazel-skylib (installed by `scripts/setup.sh --tsan`).
    _maybe_local("bazel_skylib", "/usr/share/bazel/tools/skylib")
