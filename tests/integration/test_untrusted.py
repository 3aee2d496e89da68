"""Nothing in an artifact or its manifest decides a host path, gives a traceback, hangs, or
lies to the terminal.

Real artifacts are built with the CLI and then tampered with (repacked with tarfile, or
edited in a directory artifact); each hostile case goes through `bundle verify` and
`bundle compare` as a user would run them, and each asserts: one `bundle: error:` line,
the documented exit code, no traceback, and a sentinel directory (and the TMPDIR the
commands use) unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from support.cli import run_cli
from support.files import write_tar
from support.needs import need_tool
from support.paths import REPO
from support.roots import need_root
from support.toolchain import gcc

from bundler import tree
from bundler.errors import InputError, UnsafeArtifactError
from bundler.manifest import MANIFEST_PATH, load, parse, prefix_problem
from bundler.safe_unpack import resolve_inside

HELLO = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    printf("hello from %s\n", argc > 1 ? argv[1] : "nowhere");
    return argc > 2 ? 7 : 0;
}
"""
MEMBER_MANIFEST = f"hello/{MANIFEST_PATH}"
COMMANDS = ("verify", "compare")
TIMEOUT = 120


# --- helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """hello as hello.tar.zst and as a directory artifact, and its static build."""
    work = tmp_path_factory.mktemp("untrusted")
    program = gcc(work / "hello", HELLO)
    static = gcc(work / "hello-static", HELLO, "-static")
    for out in ("hello.tar.zst", "tree/"):
        result = run_cli(str(program), "-o", f"{work}/{out}")
        assert result.returncode == 0, result.stderr
    return {"zst": work / "hello.tar.zst", "dir": work / "tree", "static": static}


@pytest.fixture
def host(tmp_path: Path, monkeypatch) -> Callable[[], dict[str, str]]:
    """The parts of the host an attack would touch: a sentinel directory and the TMPDIR
    the commands use. Returns a function giving their listing with hashes."""
    sentinel = tmp_path / "sentinel"
    (sentinel / "inner").mkdir(parents=True)
    (sentinel / "inner" / "precious").write_text("keep me\n")
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))

    def listing() -> dict[str, str]:
        found = {}
        for root in (sentinel, scratch):
            for path in sorted(root.rglob("*")):
                found[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest()
                                    if path.is_file() and not path.is_symlink() else "dir")
        return found
    return listing


def bundle(*args: str, stdin=subprocess.DEVNULL, timeout: float = TIMEOUT,
           ) -> subprocess.CompletedProcess[str]:
    """`python -m bundler ARGS` with a timeout: a hang fails the test instead of the run."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("LD_LIBRARY_PATH", None)
    return subprocess.run([sys.executable, "-m", "bundler", *args], capture_output=True,
                          text=True, env=env, stdin=stdin, timeout=timeout)


def run_command(command: str, artifact: Path | str, built: dict[str, Path], *extra: str,
                **kwargs) -> subprocess.CompletedProcess[str]:
    if command == "verify":
        need_root()
        return bundle("verify", str(artifact), *extra, **kwargs)
    return bundle("compare", str(artifact), str(built["static"]), *extra, **kwargs)


def assert_refused(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """One line on stderr starting `bundle: error:`, naming `words`; exit `code`."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("bundle: error: "), result.stderr
    assert not any(line.startswith("verify: PASS") for line in result.stdout.splitlines())
    for word in words:
        assert word in lines[0], (word, lines[0])


def members(artifact: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    data = zstandard.ZstdDecompressor().stream_reader(artifact.open("rb"),
                                                      read_across_frames=True).read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [(info, tar.extractfile(info).read() if info.isreg() else None)  # type: ignore
                for info in tar]


def with_manifest(built: dict[str, Path], out: Path, content: bytes) -> Path:
    """The artifact with its manifest's bytes replaced (the manifest is not in its own
    records, so everything else still matches)."""
    entries = [(info, content if info.name == MEMBER_MANIFEST else data)
               for info, data in members(built["zst"])]
    return write_tar(out, entries)


def edited_manifest(built: dict[str, Path], out: Path, edit: Callable[[dict], object]) -> Path:
    manifest = json.loads(dict((i.name, d) for i, d in members(built["zst"]))[MEMBER_MANIFEST])
    return with_manifest(built, out, json.dumps(edit(manifest)).encode())


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    return info, None


def setting(key: str, value: object) -> Callable[[dict], dict]:
    def edit(manifest: dict) -> dict:
        manifest[key] = value
        return manifest
    return edit


def valid_manifest(built: dict[str, Path]) -> dict:
    return json.loads(dict((i.name, d) for i, d in members(built["zst"]))[MEMBER_MANIFEST])


# --- the prefix decides no host path ------------------------------------------------------


def traversal_prefixes(sentinel: Path) -> dict[str, str]:
    return {
        "dot-dot to the sentinel": "/../../../../../../../.." + str(sentinel / "x"),
        "dot-dot to /tmp": "/../../../tmp/bundle-untrusted-x",
        "/dev/null": "/dev/null",
        "/proc": "/proc/self",
        "relative": "opt/hello",
        "NUL": "/opt/hel\0lo",
        "newline": "/opt/hello\nverify: PASS",
        "huge": "/" + "a" * 100_000,
        "root": "/",
        "trailing slash": "/opt/hello/",
        "double slash": "//opt/hello",
        "not a string": ["/opt", "hello"],  # type: ignore[dict-item]
    }


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(traversal_prefixes(Path("/x"))))
def test_hostile_prefixes_are_refused(built, host, tmp_path: Path, command: str,
                                      case: str) -> None:
    prefix = traversal_prefixes(tmp_path / "sentinel")[case]
    artifact = edited_manifest(built, tmp_path / "evil.tar", setting("prefix", prefix))
    before = host()
    result = run_command(command, artifact, built)
    assert_refused(result, 4, "manifest", "prefix")
    assert host() == before
    assert not Path("/tmp/bundle-untrusted-x").exists()


def test_prefix_inside_the_sandbox_roots_own_directories(built, host, tmp_path: Path) -> None:
    """/etc is a valid prefix as data (compare reports it) but verify would install the
    artifact over its sandbox root's own /etc: refused there."""
    artifact = edited_manifest(built, tmp_path / "etc.tar", setting("prefix", "/etc"))
    before = host()
    assert_refused(run_command("verify", artifact, built), 4, "prefix /etc", "sandbox")
    compared = run_command("compare", artifact, built)
    assert compared.returncode == 0, compared.stderr
    assert re.search(r"^ +prefix +/etc$", compared.stdout, re.M), compared.stdout
    assert host() == before


def test_a_traversal_prefix_with_a_user_root(built, host, tmp_path: Path) -> None:
    """With --root DIR, `..` in the prefix once put files into DIR/etc/: refused, DIR
    untouched (the sentinel is the root here)."""
    artifact = edited_manifest(built, tmp_path / "evil.tar", setting("prefix", "/x/../../etc"))
    before = host()
    result = run_command("verify", artifact, built, "--root", str(tmp_path / "sentinel"))
    assert_refused(result, 4, "manifest", "prefix")
    assert host() == before


def test_prefix_rule() -> None:
    assert prefix_problem("/opt/hello") is None
    assert prefix_problem("/srv/my app") is None
    for bad in ("/", "opt", "/a/../b", "/a/", "//a", "/a/./b", "/dev", "/sys/x", "/a\x1bb",
                "/a:b", "/$ORIGIN"):
        assert prefix_problem(bad), bad


# --- fields of the wrong type, missing keys, nesting, size ----------------------------------

WRONG_TYPES = {
    "name": [7, "a/b", "..", ""],
    "arch": [7, ["x86-64"]],
    "prefix": [7, None, {}],
    "launcher": [7, None, ["loader"]],
    "loader": [7, "/lib/ld.so", "lib/../../ld.so", None],
    "glibc": [2.31, ["2.31"]],
    "min_kernel": [3, {}],
    "programs": ["hello", [], [7], ["../hello"], ["nothere"], {"hello": 1}],
    "missing": ["libx.so", [7]],
    "excluded": ["libx.so", [None]],
    "environment": ["GCONV_PATH", [7], [{"means": "GCONV_PATH"}], [{"variable": 1,
                                                                   "means": "x"}]],
    "runtime_missing": [{}, [1]],
    "files": ["lib/libc.so.6", {}, None, [7]],
    "format_version": ["1", -1, True],
    "launcher_type": [7],
    "nss": ["yes", {"used": "yes"}],
}


def _record_edits() -> dict[str, Callable[[dict], None]]:
    def field(key: str, value: object) -> Callable[[dict], None]:
        return lambda record: record.__setitem__(key, value)
    return {
        "path int": field("path", 7), "path ..": field("path", "../../etc/passwd"),
        "path absolute": field("path", "/etc/passwd"), "path empty part": field("path", "a//b"),
        "path missing": lambda r: r.pop("path"), "type dir": field("type", "dir"),
        "size string": field("size", "12"), "size negative": field("size", -1),
        "size bool": field("size", True), "size huge": field("size", 1 << 70),
        "mode int": field("mode", 493), "mode 0999": field("mode", "0999"),
        "sha256 short": field("sha256", "abc"), "sha256 missing": lambda r: r.pop("sha256"),
        "patched string": field("patched", "x"),
        "patched size": field("patched", {"source_size": "12"}),
        "loaded_at_run_time string": field("loaded_at_run_time", "yes"),
        "symlink without target": lambda r: r.update(type="symlink"),
        "record is a list": lambda r: (r.clear(), r.update({"0": []})),
    }


RECORD_EDITS = _record_edits()


def test_every_field_of_the_wrong_type_is_one_line(built) -> None:
    """The loader itself, field by field (fast): UnsafeArtifactError naming the field."""
    good = valid_manifest(built)
    parse(good, "hello")
    count = 0
    for key, values in WRONG_TYPES.items():
        for value in values:
            manifest = json.loads(json.dumps(good))
            manifest[key] = value
            with pytest.raises(ValueError) as refused:
                parse(manifest, "hello")
            assert key in str(refused.value) and "\n" not in str(refused.value), (key, value)
            count += 1
    for edit in RECORD_EDITS.values():
        manifest = json.loads(json.dumps(good))
        edit(manifest["files"][0])
        with pytest.raises(ValueError, match=r"files\[0\]"):
            parse(manifest, "hello")
        count += 1
    for required in ("programs", "files", "prefix", "launcher", "loader"):
        manifest = json.loads(json.dumps(good))
        del manifest[required]
        with pytest.raises(ValueError, match=f"{required}: missing"):
            parse(manifest, "hello")
    print(f"{count} malformed manifests refused")


def test_unknown_keys_are_tolerated_and_optional_ones_defaulted(built) -> None:
    manifest = valid_manifest(built)
    manifest["a_key_from_the_future"] = {"deep": [1, 2, {"x": None}]}
    manifest["files"][0]["another_new_key"] = 7
    for optional in ("name", "arch", "glibc", "min_kernel", "missing", "excluded",
                     "environment", "runtime_missing", "format_version", "launcher_type",
                     "nss", "tool", "tool_version"):
        manifest.pop(optional, None)
    parsed = parse(manifest, "hello")
    assert (parsed.name, parsed.arch, parsed.glibc, parsed.launcher_type) == (
        "hello", "unknown", None, "sh")
    assert parsed.programs == ("hello",) and parsed.files


MANIFEST_CASES: dict[str, Callable[[dict[str, Path], Path], Path]] = {
    "a list": lambda b, p: with_manifest(b, p, b"[1, 2, 3]"),
    "not JSON": lambda b, p: with_manifest(b, p, b"{\"files\": [\x00"),
    "not UTF-8": lambda b, p: with_manifest(b, p, b"{\"name\": \"\xff\xfe\"}"),
    "nested 100,000 deep": lambda b, p: with_manifest(b, p, b"[" * 100_000 + b"]" * 100_000),
    "100 MB": lambda b, p: with_manifest(b, p, b"{" + b" " * (100 << 20) + b"}"),
    "string for the file list": lambda b, p: edited_manifest(b, p, setting("files", "lib/x")),
    "programs missing": lambda b, p: edited_manifest(
        b, p, lambda m: {k: v for k, v in m.items() if k != "programs"}),
    "a record of the wrong type": lambda b, p: edited_manifest(
        b, p, lambda m: setting("files", [*m["files"][1:], {"path": 7}])(m)),
    "a symlink": lambda b, p: write_tar(p, [
        (i, d) for i, d in members(b["zst"]) if i.name != MEMBER_MANIFEST]
        + [symlink(MEMBER_MANIFEST, "report.md")]),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_malformed_manifests_are_one_line(built, host, tmp_path: Path, command: str,
                                          case: str) -> None:
    artifact = MANIFEST_CASES[case](built, tmp_path / "evil.tar")
    before = host()
    result = run_command(command, artifact, built)
    assert_refused(result, 4, "manifest")
    assert host() == before


@pytest.mark.parametrize("command", COMMANDS)
def test_an_artifact_without_a_manifest_is_not_an_artifact(built, host, tmp_path: Path,
                                                           command: str) -> None:
    artifact = write_tar(tmp_path / "plain.tar", [
        (i, d) for i, d in members(built["zst"]) if i.name != MEMBER_MANIFEST])
    before = host()
    assert_refused(run_command(command, artifact, built), 2, "not an artifact")
    assert host() == before


# --- symlinks are judged by where they lead -------------------------------------------------

# Each link stays inside by its text alone; followed, the chain leaves the artifact.
CHAINS = {
    "a -> lib/x/b/.., b -> ../..": [
        ("hello/lib/x/b", "../.."), ("hello/a", "lib/x/b/..")],
    "climbing to the host's ls": [
        ("hello/lib/y", ".."), ("hello/s1", "lib/y"), ("hello/lib/p", "../s1/.."),
        *((f"hello/lib/q{k}", f"{'p' if k == 0 else f'q{k - 1}'}/../..") for k in range(12)),
        ("hello/libexec/ls", "../lib/q11/usr/bin/ls")],
    "a loop": [("hello/lib/loop1", "loop2"), ("hello/lib/loop2", "loop1")],
}


def chain_tar(built: dict[str, Path], out: Path, links: list[tuple[str, str]]) -> Path:
    extra = [symlink(name, target) for name, target in links]
    directories = {"hello/lib/x"} if any(n.startswith("hello/lib/x/") for n, _ in links) else set()
    dirs = []
    for name in sorted(directories):
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        dirs.append((info, None))
    return write_tar(out, [*members(built["zst"]), *dirs, *extra])


def chain_directory(built: dict[str, Path], out: Path, links: list[tuple[str, str]]) -> Path:
    shutil.copytree(built["dir"], out, symlinks=True)
    for name, target in links:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    return out


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("form", ["tar", "dir"])
@pytest.mark.parametrize("case", sorted(CHAINS))
def test_symlink_chains_leaving_the_artifact_are_refused(built, host, tmp_path: Path,
                                                         command: str, form: str,
                                                         case: str) -> None:
    make = chain_tar if form == "tar" else chain_directory
    artifact = make(built, tmp_path / ("evil.tar" if form == "tar" else "evil"), CHAINS[case])
    before = host()
    result = run_command(command, artifact, built)
    assert_refused(result, 4, "symlink")
    assert host() == before


def test_the_program_replaced_by_a_chain_to_the_hosts_ls(built, host, tmp_path: Path) -> None:
    """The reviewer's case: compare analysed the host's /usr/bin/ls as the program."""
    links = [*CHAINS["climbing to the host's ls"][:-1], ("hello/libexec/hello",
                                                         "../lib/q11/usr/bin/ls")]
    entries = [(i, d) for i, d in members(built["zst"]) if i.name != "hello/libexec/hello"]
    artifact = write_tar(tmp_path / "ls.tar", [*entries, *(symlink(n, t) for n, t in links)])
    assert_refused(run_command("compare", artifact, built), 4, "symlink", "leaves")


def test_chains_that_stay_inside_are_kept(tmp_path: Path) -> None:
    top = tmp_path / "top"
    (top / "lib" / "x").mkdir(parents=True)
    (top / "lib" / "real.so").write_text("x")
    (top / "lib" / "alias.so").symlink_to("real.so")
    (top / "lib" / "x" / "up").symlink_to("../..")
    (top / "abs").symlink_to("/lib/alias.so")  # absolute: from the artifact's top
    assert resolve_inside(str(top), "lib/alias.so") == "lib/real.so"
    assert resolve_inside(str(top), "lib/x/up/lib/alias.so") == "lib/real.so"
    assert resolve_inside(str(top), "abs") == "lib/real.so"
    assert resolve_inside(str(top), "lib/dangling/../real.so") == "lib/real.so"
    with pytest.raises(UnsafeArtifactError):
        resolve_inside(str(top), "lib/x/up/..")


# --- inputs that are not artifacts: no traceback, no hang ------------------------------------


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo")
    return tmp_path / "fifo"


def _socket(tmp_path: Path) -> Path:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "sock"))
    return tmp_path / "sock"


def _bytes(data: bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        (tmp_path / "input.tar.zst").write_bytes(data)
        return tmp_path / "input.tar.zst"
    return make


def _zstd_bomb(tmp_path: Path) -> Path:
    """1 GiB of zeros in ~40 KiB: a tar whose first block ends it."""
    out = tmp_path / "bomb.tar.zst"
    with out.open("wb") as handle, zstandard.ZstdCompressor().stream_writer(handle) as zst:
        block = b"\0" * (1 << 20)
        for _ in range(1024):
            zst.write(block)
    return out


def _sparse_10g(tmp_path: Path) -> Path:
    """A tar (GNU tar --sparse) whose member is a 10 GB sparse file: a few KiB on disk."""
    need_tool("tar")
    source = tmp_path / "sparse-src" / "hello"
    source.mkdir(parents=True)
    with (source / "big").open("wb") as handle:
        handle.truncate(10 * 10**9)
    out = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "-cf", str(out), "-C", str(source.parent), "hello"],
                   check=True)
    shutil.rmtree(source.parent)
    return out


def _deep_tar(tmp_path: Path) -> Path:
    path = "hello"
    entries = []
    for _ in range(5000):
        info = tarfile.TarInfo(path)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        entries.append((info, None))
        path += "/d"
    return write_tar(tmp_path / "deep.tar", entries)


def _frames_then_garbage(tmp_path: Path) -> Path:
    """A large artifact is many zstd frames (framed_zstd.py): a first frame holding the
    start of a tar member, then a frame header followed by garbage."""
    info = tarfile.TarInfo("hello/libexec/hello")
    info.size = 4096
    head = info.tobuf(tarfile.GNU_FORMAT) + b"x" * 1000
    out = tmp_path / "frames.tar.zst"
    out.write_bytes(zstandard.ZstdCompressor().compress(head) + b"\x28\xb5\x2f\xfd"
                    + random.Random(9).randbytes(4096))
    return out


NOT_ARTIFACTS: dict[str, tuple[Callable[[Path], Path | str], int, str]] = {
    "a FIFO with no writer": (_fifo, 2, "FIFO"),
    "/dev/zero": (lambda _: "/dev/zero", 2, "device"),
    "a socket": (_socket, 2, "socket"),
    "a directory": (lambda p: p, 2, "not an artifact"),
    "an empty file": (_bytes(b""), 2, "not an artifact"),
    "random bytes": (_bytes(b"R" + random.Random(7).randbytes(1 << 16)), 2, "not an artifact"),
    "zstd magic, then garbage": (_bytes(b"\x28\xb5\x2f\xfd" + random.Random(8).randbytes(4096)),
                                 4, "cannot unpack"),
    "a zstd bomb": (_zstd_bomb, 2, "empty archive"),
    "a zstd frame, then a garbage one": (_frames_then_garbage, 4, "cannot unpack"),
    "a 10 GB sparse member": (_sparse_10g, 4, "sparse"),
    "5,000 nested directories": (_deep_tar, 4, "deeper than"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(NOT_ARTIFACTS))
def test_inputs_that_are_not_artifacts(built, host, tmp_path: Path, command: str,
                                       case: str) -> None:
    make, code, word = NOT_ARTIFACTS[case]
    work = tmp_path / "work"
    work.mkdir()
    artifact = make(work)
    before = host()
    result = run_command(command, artifact, built, timeout=60)  # a hang fails here
    assert_refused(result, code, word)
    assert host() == before


def test_an_artifact_in_several_zstd_frames_is_read_whole(built, tmp_path: Path) -> None:
    """What the build writes for a large artifact: the same tar stream cut into frames
    (here at odd places, even inside a member) is the same artifact."""
    data = zstandard.ZstdDecompressor().stream_reader(built["zst"].open("rb"),
                                                      read_across_frames=True).read()
    cuts = [0, 700, len(data) // 2 + 3, len(data)]
    framed = tmp_path / "framed.tar.zst"
    framed.write_bytes(b"".join(zstandard.ZstdCompressor().compress(data[a:b])
                                for a, b in zip(cuts, cuts[1:])))
    result = bundle("compare", str(framed), str(built["static"]))
    assert result.returncode == 0, result.stderr
    listed = bundle("inspect", str(framed))
    assert listed.returncode == 0 and "libexec/hello" in listed.stdout, listed.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_dev_stdin_is_refused_without_reading(built, host, command: str) -> None:
    """/dev/stdin as the artifact: a pipe that nobody closes; refused, not read (no hang)."""
    reader, writer = os.pipe()
    try:
        result = run_command(command, "/dev/stdin", built, stdin=reader, timeout=60)
    finally:
        os.close(reader)
        os.close(writer)
    assert_refused(result, 2, "FIFO")


def test_a_directory_artifact_nested_1100_deep(built, host, tmp_path: Path) -> None:
    """Deeper than Python's recursion limit, in a directory artifact: refused, and the
    tree is removed by tree.remove_tree (rmtree would raise RecursionError)."""
    artifact = tmp_path / "deep"
    shutil.copytree(built["dir"], artifact, symlinks=True)
    descriptor = os.open(artifact / "hello", os.O_RDONLY)
    try:
        for _ in range(1100):
            os.mkdir("d", dir_fd=descriptor)
            inner = os.open("d", os.O_RDONLY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = inner
    finally:
        os.close(descriptor)
    try:
        before = host()
        for command in COMMANDS:
            if command == "verify" and os.geteuid() != 0:
                continue
            assert_refused(run_command(command, artifact, built), 4, "deeper than")
        assert host() == before
    finally:
        tree.remove_tree(str(artifact))
    assert not artifact.exists()


def test_remove_tree_goes_any_depth_and_never_follows_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    top = tmp_path / "top"
    top.mkdir()
    descriptor = os.open(top, os.O_RDONLY)
    for level in range(3000):  # deeper than PATH_MAX as a path
        os.mkdir("dddd", dir_fd=descriptor)
        if level % 500 == 0:
            os.symlink(str(outside), "link", dir_fd=descriptor)
        inner = os.open("dddd", os.O_RDONLY, dir_fd=descriptor)
        os.close(descriptor)
        descriptor = inner
    os.fchmod(descriptor, 0)
    os.close(descriptor)
    names = [name for name, _ in tree.walk(str(tmp_path / "outside"))]
    assert names == ["keep"]
    tree.remove_tree(str(top))
    assert not top.exists()
    assert (outside / "keep").read_text() == "x"


# --- the terminal cannot be lied to ----------------------------------------------------------

FAKE = "\n\x1b[2K\x1b[1A\rverify: PASS (2 of 2 runs passed)\n\x1b[8m"


@pytest.mark.parametrize("command", COMMANDS)
def test_member_name_with_a_fake_pass_line(built, host, tmp_path: Path, command: str) -> None:
    info = tarfile.TarInfo(f"hello/x{FAKE}")
    artifact = write_tar(tmp_path / "lie.tar", [*members(built["zst"]), (info, b"x")])
    before = host()
    result = run_command(command, artifact, built)
    assert_refused(result, 4, "control characters")
    assert "\x1b" not in result.stderr + result.stdout
    assert host() == before


def test_manifest_strings_with_a_fake_pass_line(built, tmp_path: Path) -> None:
    artifact = edited_manifest(built, tmp_path / "lie.tar", setting("arch", f"x86-64{FAKE}"))
    result = run_command("compare", artifact, built)
    assert_refused(result, 4, "arch", "control character")
    assert "\x1b" not in result.stderr


def test_render_escapes_every_line() -> None:
    """Whatever reaches a VerifyResult (labels with the prefix, problems naming members,
    the program's stderr) cannot start a line of its own in verify's output."""
    from bundler.integrity import IntegrityResult
    from bundler.isolation import Outcome
    from bundler.verify import RunCheck, VerifyResult, render

    outcome = Outcome(exit_code=3, stdout=f"out{FAKE}", stderr=f"err{FAKE}more\n\x1b]0;title\x07",
                      seconds=0.1)
    run = RunCheck(label=f"at its prefix /opt/x{FAKE}", outcome=outcome, passed=False,
                   reasons=(f"exit 3{FAKE}",))
    result = VerifyResult(artifact=f"a{FAKE}.tar", name=f"n{FAKE}", arch="x86-64",
                          glibc=f"2.31{FAKE}", checksum="no sha256",
                          integrity=IntegrityResult(1, ()), root=f"bare{FAKE}", runs=(run,),
                          notes=(f"note{FAKE}",))
    text = render(result)
    lines = text.splitlines()
    assert lines[-1] == "verify: FAIL (0 of 1 runs passed)"
    assert not any(line.startswith("verify: PASS") for line in lines)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "\\x1b[2K" in text  # shown, not obeyed


# --- options: an unknown option is an error, not the program's -------------------------------


def test_a_mistyped_option_is_an_error_not_an_argument(built, host) -> None:
    before = host()
    result = bundle("verify", str(built["zst"]), "--expect-exitt", "3")
    assert_refused(result, 2, "--expect-exitt", "--expect-exit")
    assert_refused(bundle("compare", str(built["zst"]), "--bogus"), 2, "--bogus")
    assert_refused(bundle("verify"), 2, "ARTIFACT")
    # An option value that does not split as the shell would (an unclosed quote).
    assert_refused(bundle("verify", str(built["zst"]), "--emulator", "qemu 'x"), 2,
                   "--emulator", "quotation")
    assert host() == before


def test_program_arguments_after_the_double_dash(built, host) -> None:
    need_root()
    result = bundle("verify", str(built["zst"]), "--expect-output", "^hello from --x$",
                    "--", "--x")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().splitlines()[-1].startswith("verify: PASS")


# --- the loader's own file checks -----------------------------------------------------------


def test_load_reads_no_fifo_and_no_symlink(tmp_path: Path) -> None:
    top = tmp_path / "hello"
    (top / ".bundle").mkdir(parents=True)
    with pytest.raises(InputError, match="not an artifact"):
        load(str(top), "art")
    os.mkfifo(top / MANIFEST_PATH)
    with pytest.raises(UnsafeArtifactError, match="not a regular file"):
        load(str(top), "art")  # O_NONBLOCK: no hang without a writer
    os.unlink(top / MANIFEST_PATH)
    (top / MANIFEST_PATH).symlink_to("/etc/hostname")
    with pytest.raises(UnsafeArtifactError, match="plain file"):
        load(str(top), "art")


def test_inspect_shows_a_hostile_soname_on_one_line(tmp_path: Path) -> None:
    """A DT_NEEDED with a newline and escape codes (a library's -soname) is shown escaped."""
    soname = "libodd\n\x1b[2Kverify: PASS.so"
    gcc(tmp_path / "libodd.so", "int f(void) { return 1; }\n", f"-Wl,-soname,{soname}",
        shared=True)
    program = gcc(tmp_path / "oddprog", "int f(void);\nint main(void) { return f(); }\n",
                  f"-L{tmp_path}", "-lodd")
    result = run_cli("inspect", str(program), "--allow-missing")
    assert result.returncode == 0, result.stderr
    assert "libodd\\n\\x1b[2Kverify: PASS.so" in result.stdout
    assert "\x1b" not in result.stdout
    assert not any(line.startswith("verify: PASS") for line in result.stdout.splitlines())


def test_compare_runs_nothing_changed_after_bundling(tmp_path: Path) -> None:
    """A launcher replaced after the manifest was written: `compare --run` names the
    difference (exit 4) and runs neither the launcher nor the static build."""
    program = gcc(tmp_path / "tool", "int main(void){return 0;}\n")
    static = gcc(tmp_path / "tool-static", "int main(void){return 0;}\n", "-static")
    built = run_cli(str(program), "-o", str(tmp_path / "out") + "/")
    assert built.returncode == 0, built.stderr
    witness = tmp_path / "ran"
    launcher = tmp_path / "out" / "tool" / "bin" / "tool"
    launcher.unlink()
    launcher.write_text(f"#!/bin/sh\ntouch {witness}\n")
    launcher.chmod(0o755)
    result = run_cli("compare", str(tmp_path / "out" / "tool"), str(static), "--run", "")
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("bundle: error:") and "bin/tool" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not witness.exists()
