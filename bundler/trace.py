"""`bundle verify --trace`: which files outside the artifact the program opens, executes or
looks for, seen by strace in one more sandboxed run.

The scan of compiled-in paths (compiled_paths.py) says what a program *could* open; a run
says what it *did*: "python3 looked for /usr/lib/python3.11/encodings (missing)" is the
line a release engineer needs before shipping. strace runs outside the sandbox and follows
bubblewrap and all its children (`-f`); its output goes to a file outside the sandbox, so
the program can neither see nor forge it. The run is information, never a verdict: the
runs without strace judge pass or fail (strace changes timing and, rarely, behaviour).

What strace writes is parsed by a pure function (`parse_trace`), the run is one call at
the edge (`run_traced`). Only the program's calls count: bubblewrap's own set-up (its
mounts, pivot_root, /newroot) comes before the first execve of the command and is left
out, and every process that appears after it is the program's or its children's.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bundler.errors import EnvironmentUnfitError, InputError
from bundler.isolation import Layout, Outcome, Sandbox, run_sandboxed

# The system calls that name a file. A leading '?' lets strace skip a name this
# architecture (aarch64 has no open, stat, access, readlink) or an old strace (openat2,
# faccessat2: 5.6/5.8) does not know, instead of refusing to start; strace 4.17 and newer
# take it. No `-e status=` (strace 5.2): every result is wanted, failures most of all.
# opendir() is an openat with O_DIRECTORY; chdir/fchdir keep each process's cwd for its
# relative paths (and an opened directory's fd those of the *at calls); clone/fork/vfork
# give a child its parent's name, cwd and fds (shared with CLONE_FS, CLONE_FILES); close,
# dup and fcntl(F_DUPFD) keep the fds true (fts, in find and du, walks by duplicated fds).
TRACED_CALLS = (
    "execve", "?execveat", "?open", "?openat", "?openat2", "?creat",
    "?stat", "?lstat", "?stat64", "?lstat64", "?newfstatat", "?fstatat64", "?statx",
    "?access", "?faccessat", "?faccessat2", "?readlink", "?readlinkat",
    "?chdir", "?fchdir", "?clone", "?clone3", "?fork", "?vfork",
    "?close", "?dup", "?dup2", "?dup3", "?fcntl", "?fcntl64",
)
# Calls whose path is their second argument, after a directory fd (AT_FDCWD: the cwd).
DIRFD_CALLS = frozenset({"openat", "openat2", "execveat", "newfstatat", "fstatat64", "statx",
                         "faccessat", "faccessat2", "readlinkat"})
EXEC_CALLS = frozenset({"execve", "execveat"})
OPEN_CALLS = frozenset({"open", "openat", "openat2", "creat"})
CHDIR_CALLS = frozenset({"chdir", "fchdir"})
FORK_CALLS = frozenset({"clone", "clone3", "fork", "vfork"})
FD_CALLS = frozenset({"close", "dup", "dup2", "dup3", "fcntl", "fcntl64"})
# strace prints a path argument whole (up to PATH_MAX) whatever -s says; -s bounds the
# strings it reads back (readlink's answer), which are not used but kept whole to parse.
STRING_LIMIT = 4096
# The sandbox's own kernel interfaces, not files a host must have; the sealed paths of the
# bundled glibc (sealing.py: /dev/null/..., /sys////) are inside them too.
NOISE = ("/proc", "/sys", "/dev")
MISSING_ERRORS = frozenset({"ENOENT", "ENOTDIR"})

EXECUTED = "executed"
WRITTEN = "opened for writing"
OPENED = "opened"
LOOKED_AT = "looked at"
MISSING = "looked for (missing)"
# The strongest use of a path wins when it is met several times.
RANK = {EXECUTED: 4, WRITTEN: 3, OPENED: 2, LOOKED_AT: 1}
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")

_LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$", re.S)
_CALL = re.compile(r"^(\w+)\((.*)$", re.S)
_RESULT = re.compile(r"\) +=(?: |$)")
UNFINISHED = " <unfinished ...>"
_ESCAPES = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "a": 7, "b": 8, '"': 34, "\\": 92}


@dataclass(frozen=True)
class TracedFile:
    """One path outside the artifact, as the program met it."""

    path: str  # absolute inside the sandbox; relative as given where no cwd was known
    how: str  # executed, opened for writing, opened, looked at, looked for (missing),
    #           or "failed (EACCES)" and the like
    count: int  # how many calls named it
    process: str  # the program that first named it (the basename it executed)


@dataclass(frozen=True)
class TraceFacts:
    """What one strace output says: missing paths apart from found ones."""

    missing: tuple[TracedFile, ...]
    found: tuple[TracedFile, ...]
    calls: int  # the program's file calls seen, outside the artifact or not
    processes: int  # the program's processes and threads
    started: bool  # whether the command's execve was seen at all


@dataclass(frozen=True)
class Trace:
    """The traced run: how it was started, how it ended, and what it met."""

    label: str
    outcome: Outcome
    facts: TraceFacts


@dataclass(frozen=True)
class Call:
    """One completed file call of one process, its path decoded."""

    pid: int
    name: str
    path: str | None  # None: no path (fchdir, fork) or not a plain string
    dirfd: str | None  # the directory fd as printed (AT_FDCWD, 3), for the *at calls
    rest: str  # the arguments after the path as printed: open flags, clone flags, an fd
    result: str  # "0", "3", "-1 ENOENT (No such file or directory)", "?"

    @property
    def error(self) -> str | None:
        words = self.result.split()
        if len(words) >= 2 and words[0] == "-1":
            return words[1]
        return None


def strace_command(strace: str, output: str) -> list[str]:
    """strace's options, to be followed by the traced command: follow forks, no
    attach/exit chatter, the trace into `output` (a host path outside the sandbox)."""
    return [strace, "-f", "-qq", "-s", str(STRING_LIMIT), "-o", output,
            "-e", "trace=" + ",".join(TRACED_CALLS), "--"]


def find_strace() -> str:
    """strace, checked to be able to trace here (ptrace can be forbidden in a container);
    or exit 3 saying what to do."""
    strace = shutil.which("strace")
    if strace is None:
        raise EnvironmentUnfitError("--trace needs strace: apt-get install strace")
    true = shutil.which("true") or "/bin/true"
    try:
        probe = subprocess.run([*strace_command(strace, os.devnull), true],
                               capture_output=True, text=True, errors="replace",
                               stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentUnfitError(f"--trace: {strace}: {exc}") from None
    if probe.returncode != 0:
        why = " ".join(probe.stderr.split())[:300] or f"exit {probe.returncode}"
        raise EnvironmentUnfitError(f"--trace: strace cannot trace here ({why})")
    return strace


def refuse_emulator(emulator: str | None) -> None:
    """Under --emulator strace would see qemu's calls, its own start mixed with the
    guest's: refused rather than shown as the program's. qemu-user traces the guest
    itself with its -strace option."""
    if emulator is not None:
        raise InputError("--trace: not with --emulator (strace would trace qemu, not the "
                         "program); qemu's own -strace shows the guest's calls: "
                         "--emulator 'qemu-ARCH-static -strace'")


def run_traced(strace: str, sandbox: Sandbox, layout: Layout, command: Sequence[str],
               env: dict[str, str], timeout: float, output: str, label: str,
               artifact_tops: Sequence[str]) -> Trace:
    """Run `command` sandboxed as verify's runs are, under strace; parse what it wrote."""
    outcome = run_sandboxed(sandbox, layout, command, env, timeout,
                            wrapper=strace_command(strace, output))
    with open(output, encoding="utf-8", errors="replace") as handle:
        facts = parse_trace(handle, command[0], artifact_tops)
    return Trace(label, outcome, facts)


# --- parsing: a pure function of strace's text -------------------------------------------


def parse_trace(lines: Iterable[str], start: str, artifact_tops: Sequence[str],
                cwd: str = "/") -> TraceFacts:
    """The files outside `artifact_tops` that the program met, from `strace -f` output.

    `start` is the command's path: calls before its execve are the sandbox's own set-up.
    `cwd` is where the command starts (bwrap --chdir /)."""
    processes: dict[int, _Process] = {}
    before: set[int] = set()  # pids seen before the command started (bubblewrap's)
    fork: tuple[int, str] | None = None  # the latest fork started: its pid, its flags
    seen: dict[str, _Seen] = {}
    calls = 0
    for call in completed_calls(lines):
        if not processes:
            if call.name in EXEC_CALLS and call.path == start:
                processes[call.pid] = _Process(posixpath.basename(start), _Place(cwd), {})
            else:
                before.add(call.pid)
                continue
        process = processes.get(call.pid)
        if process is None:
            if call.pid in before:
                continue
            # a child, or a thread: of the process that started a fork last
            parent = processes.get(fork[0]) if fork is not None else None
            process = processes[call.pid] = _child(parent, fork[1] if fork else "")
        if call.name in FORK_CALLS:
            fork = (call.pid, call.rest)
            continue
        if call.name in FD_CALLS:
            _follow_fds(call, process.fds)
            continue
        calls += 1
        path = _absolute(call, process)
        if path is not None and _outside(path, artifact_tops):
            seen.setdefault(path, _Seen(process.name)).add(call)
        if call.error is not None:
            continue
        if call.name in CHDIR_CALLS:
            if call.name == "fchdir":
                path = process.fds.get(int(call.rest)) if call.rest.strip().isdigit() else None
            process.place.cwd = path if path is not None and path.startswith("/") else None
        elif call.name in EXEC_CALLS and path is not None:
            process.name = posixpath.basename(path)
        elif call.name in OPEN_CALLS and path is not None and call.result.isdigit():
            process.fds[int(call.result)] = path  # a directory fd for later *at calls
    return _facts(seen, calls, len(processes), bool(processes))


class _Place:
    """A working directory, shared by the processes that share it (CLONE_FS: threads)."""

    def __init__(self, cwd: str | None) -> None:
        self.cwd = cwd  # None: no longer known (fchdir to an fd not followed)


class _Process:
    """A traced process (or thread) as the parser follows it."""

    def __init__(self, name: str, place: _Place, fds: dict[int, str]) -> None:
        self.name = name  # the basename of what it executed last (a child: its parent's)
        self.place = place
        self.fds = fds  # fd -> the path it was opened at (CLONE_FILES: shared)


def _follow_fds(call: Call, fds: dict[int, str]) -> None:
    """close forgets an fd's path; dup, dup2, dup3 and fcntl(F_DUPFD) give it a copy."""
    words = [word.strip() for word in call.rest.split(",")]
    if call.error is not None or not words or not words[0].isdigit():
        return
    old = int(words[0])
    if call.name == "close":
        fds.pop(old, None)
    elif call.result.isdigit() and (call.name.startswith("dup") or (
            len(words) > 1 and words[1].startswith("F_DUPFD"))):
        new = int(call.result)
        if old in fds:
            fds[new] = fds[old]
        else:
            fds.pop(new, None)


def _child(parent: _Process | None, flags: str) -> _Process:
    if parent is None:
        return _Process("?", _Place(None), {})
    place = parent.place if "CLONE_FS" in flags else _Place(parent.place.cwd)
    fds = parent.fds if "CLONE_FILES" in flags else dict(parent.fds)
    return _Process(parent.name, place, fds)


def completed_calls(lines: Iterable[str]) -> Iterable[Call]:
    """strace -f lines as whole calls: an `<unfinished ...>` line joined with its
    `<... NAME resumed>` line of the same pid; signals, exits and others skipped."""
    pending: dict[int, str] = {}
    for raw in lines:
        line = raw.rstrip("\n")
        match = _LINE.match(line)
        if match is None:
            continue
        pid, body = int(match.group(1)), match.group(2)
        resumed = _RESUMED.match(body)
        if resumed is not None:
            head = pending.pop(pid, None)
            if head is None:
                continue  # its start came before the trace began
            body = head + resumed.group(2)
        if body.endswith(UNFINISHED):
            pending[pid] = body[:-len(UNFINISHED)]
            started = _CALL.match(body)
            if started is not None and started.group(1) in FORK_CALLS:
                # its child can run before it returns: the fork is told when it starts
                yield Call(pid, started.group(1), None, None, started.group(2), "?")
            continue
        call = parse_call(pid, body)
        if call is not None:
            yield call


def parse_call(pid: int, body: str) -> Call | None:
    """`openat(AT_FDCWD, "/etc/x", O_RDONLY) = 3` as a Call; None for what is no call."""
    match = _CALL.match(body)
    if match is None:
        return None
    name, args = match.group(1), match.group(2)
    # The last ") = " ends the arguments (strace pads before "="): a result never holds
    # one, a string argument may.
    ends = list(_RESULT.finditer(args))
    if not ends:
        return None
    head, result = args[:ends[-1].start()], args[ends[-1].end():]
    dirfd = None
    if name in DIRFD_CALLS:
        dirfd, comma, head = head.partition(", ")
        if not comma:
            return Call(pid, name, None, dirfd, "", result.strip())
    no_path = name in FORK_CALLS or name in FD_CALLS or name == "fchdir"
    path, rest = (None, head) if no_path else decode_string(head)
    # rest: the flags of an open or a clone, the fd of fchdir
    return Call(pid, name, path, dirfd, rest, result.strip())


def decode_string(text: str) -> tuple[str | None, str]:
    """strace's quoted string at the start of `text` decoded (its C escapes: \\n, \\",
    \\\\, octal \\33, hex \\x1b), and what follows it; (None, text) if it is no string."""
    if not text.startswith('"'):
        return None, text
    out = bytearray()
    index = 1
    while index < len(text):
        char = text[index]
        if char == '"':
            rest = text[index + 1:]
            if rest.startswith("..."):  # cut by strace: not a whole path
                return None, rest[3:]
            return out.decode("utf-8", "backslashreplace"), rest
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            index += 1
            continue
        following = text[index + 1:index + 2]
        if following in _ESCAPES:
            out.append(_ESCAPES[following])
            index += 2
        elif following == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[index + 2:index + 4]):
            out.append(int(text[index + 2:index + 4], 16))
            index += 4
        else:
            digits = re.match(r"[0-7]{1,3}", text[index + 1:index + 4])
            if digits is None:
                return None, text
            out.append(int(digits.group(0), 8) & 0xFF)
            index += 1 + len(digits.group(0))
    return None, text  # no closing quote


def _absolute(call: Call, process: _Process) -> str | None:
    """The call's path made absolute against the process's cwd (or the directory fd it
    names, when its open was seen), else as given; normalised (lexically: `..` folded)."""
    path = call.path
    if not path:  # none, or "" with AT_EMPTY_PATH: the fd itself
        return None
    if not path.startswith("/"):
        if call.dirfd is None or call.dirfd == "AT_FDCWD":
            base = process.place.cwd
        else:
            base = process.fds.get(int(call.dirfd)) if call.dirfd.isdigit() else None
        if base is None:
            return path
        path = posixpath.join(base, path)
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def _outside(path: str, artifact_tops: Sequence[str]) -> bool:
    """Worth listing: not inside the artifact, not on the way to it, not kernel noise."""
    if not path.startswith("/"):
        return True  # relative to a directory we could not follow: listed as given
    for top in artifact_tops:
        if path == top or path.startswith(top + "/") or top.startswith(path.rstrip("/") + "/") \
                or path == "/":
            return False
    return not any(path == noise or path.startswith(noise + "/") for noise in NOISE)


class _Seen:
    """A path's calls while parsing (mutable; frozen into a TracedFile at the end)."""

    def __init__(self, process: str) -> None:
        self.process = process
        self.count = 0
        self.how: str | None = None  # the strongest successful use
        self.errors: list[str] = []

    def add(self, call: Call) -> None:
        self.count += 1
        error = call.error
        if error == "EINVAL" and call.name in ("readlink", "readlinkat"):
            error = None  # there, and no symbolic link: realpath() asks this of every part
        if error is not None:
            self.errors.append(error)
            return
        how = _how(call)
        if self.how is None or RANK[how] > RANK[self.how]:
            self.how = how


def _how(call: Call) -> str:
    if call.name in EXEC_CALLS:
        return EXECUTED
    if call.name in OPEN_CALLS:
        written = call.name == "creat" or any(flag in call.rest for flag in WRITE_FLAGS)
        return WRITTEN if written else OPENED
    return LOOKED_AT


def _facts(seen: dict[str, _Seen], calls: int, processes: int, started: bool) -> TraceFacts:
    missing, found = [], []
    for path in sorted(seen):
        entry = seen[path]
        if entry.how is not None:
            found.append(TracedFile(path, entry.how, entry.count, entry.process))
        elif all(error in MISSING_ERRORS for error in entry.errors):
            missing.append(TracedFile(path, MISSING, entry.count, entry.process))
        else:
            other = next(error for error in entry.errors if error not in MISSING_ERRORS)
            found.append(TracedFile(path, f"failed ({other})", entry.count, entry.process))
    return TraceFacts(tuple(missing), tuple(found), calls, processes, started)


# --- the text ----------------------------------------------------------------------------

SHOWN_FILES = 20  # a list longer than this is shown by directory
SHOWN_NAMES = 4  # names shown per directory


def render_trace(trace: Trace) -> list[str]:
    """The trace section of verify's text: missing first, then found; by directory when
    there are many; capped with "and N more"."""
    outcome, facts = trace.outcome, trace.facts
    code = "timeout" if outcome.exit_code is None else f"exit {outcome.exit_code}"
    lines = [f"TRACE {trace.label}: {code} in {outcome.seconds * 1000:.0f} ms; "
             f"{facts.processes} process{'es' if facts.processes != 1 else ''}, "
             f"{facts.calls} file calls (information, not judged)"]
    if not facts.started:
        lines.append("      the command was not seen starting: nothing to list")
        return lines
    if outcome.exit_code is None:
        lines.append("      timed out: the lists are of what it did until then")
    lines.append(f"  Files opened outside the artifact (traced run): {len(facts.missing)} "
                 f"missing, {len(facts.found)} found")
    for title, files in (("missing", facts.missing), ("found", facts.found)):
        lines += [f"    {title:<8} {text}" for text in _listed(files)]
    return lines


def _listed(files: Sequence[TracedFile]) -> list[str]:
    if len(files) <= SHOWN_FILES:
        return [f"{f.path}  ({_how_text(f.how)} by {f.process}"
                + (f", {f.count} calls)" if f.count > 1 else ")") for f in files]
    by_directory: dict[str, list[TracedFile]] = {}
    for traced in files:
        by_directory.setdefault(posixpath.dirname(traced.path) or ".", []).append(traced)
    ordered = sorted(by_directory.items(), key=lambda item: (-len(item[1]), item[0]))
    lines = []
    for directory, members in ordered[:SHOWN_FILES]:
        names = [posixpath.basename(f.path) for f in members]
        more = len(names) - SHOWN_NAMES
        shown = ", ".join(names[:SHOWN_NAMES]) + (f" and {more} more" if more > 0 else "")
        hows = sorted({_how_text(f.how) for f in members})
        lines.append(f"{directory.rstrip('/')}/: {len(members)} ({'/'.join(hows)}): {shown}")
    if len(ordered) > SHOWN_FILES:
        rest = ordered[SHOWN_FILES:]
        lines.append(f"and {sum(len(m) for _, m in rest)} more in {len(rest)} more "
                     "directories (verify --json lists all)")
    return lines


def _how_text(how: str) -> str:
    return "looked for" if how == MISSING else how  # the list's title says "missing"
