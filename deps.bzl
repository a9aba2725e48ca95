"""Repositories forkserver needs under Bazel 4 with no network.

A downstream WORKSPACE uses forkserver like this:

    local_repository(name = "forkserver", path = "/path/to/forkserver")
    load("@forkserver//:deps.bzl", "forkserver_dependencies")
    forkserver_dependencies(forkserver_path = "/path/to/forkserver")

The system libraries (Abseil, Protobuf, Boost, GoogleTest) come from Debian
packages and are wrapped in //third_party; scripts/setup.sh installs them.
"""

def _maybe_local(name, path):
    if not native.existing_rule(name):
        native.local_repository(name = name, path = path)

def forkserver_dependencies(forkserver_path = "."):
    """Declares @rules_cc, @rules_java and @remote_coverage_tools locally.

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
