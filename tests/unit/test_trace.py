"""trace.py: strace's output parsed into the files a program met outside its artifact.

The parser reads real strace output: lines captured from `bundle verify --trace` of a
gcc-built program (bubblewrap's set-up, then the program; strace 6.1) and of a threaded
program (unfinished/resumed calls), kept here verbatim as a selection of whole lines; and
the output of strace run here on a program gcc builds in the test.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from support.needs import need_tool
from support.toolchain import gcc

from bundler.isolation import Outcome
from bundler.trace import (
    MISSING,
    OPENED,
    SHOWN_FILES,
    Trace,
    TracedFile,
    TraceFacts,
    completed_calls,
    decode_string,
    parse_trace,
    render_trace,
    strace_command,
)

# `bundle verify --trace` of a program bundled at /opt/probe (bare root): bubblewrap's own
# calls (pids 1085, 1086) come before the command's execve by pid 1087.
VERIFY_RUN = (
    '1085  access("/etc/ld.so.preload", R_OK) = -1 ENOENT (No such file or directory)',
    '1085  openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3',
    '1085  clone(child_stack=NULL, flags=CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLO'
    'NE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|SIGCHLD) = 1086',
    '1086  newfstatat(AT_FDCWD, "/newroot/etc", 0x7ffe4c95cca0, 0) = -1 ENOENT (No su'
    'ch file or directory)',
    '1086  chdir("/newroot")                 = 0',
    '1086  clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGC'
    'HLD, child_tidptr=0x7fd155675490) = 2',
    '1087  execve("/opt/probe/bin/probe", ["/opt/probe/bin/probe"], 0x56248bb2fd30 /*'
    ' 4 vars */) = 0',
    '1087  readlinkat(AT_FDCWD, "/proc/self/exe", "/opt/probe/bin/probe", 4095) = 20',
    '1087  execve("/opt/probe/libexec/probe", ["/opt/probe/bin/probe"], 0x7ffc9f9c474'
    '0 /* 4 vars */) = 0',
    '1087  readlink("/proc/self/exe", "/opt/probe/libexec/probe", 4096) = 24',
    '1087  newfstatat(AT_FDCWD, "/opt/probe/libexec/../lib/.bundle-acee576ff66fde14/x'
    '86_64", 0x7ffc7add9400, 0) = -1 ENOENT (No such file or directory)',
    '1087  openat(AT_FDCWD, "/opt/probe/libexec/../lib/.bundle-acee576ff66fde14/libc.'
    'so.6", O_RDONLY|O_CLOEXEC) = 3',
    '1087  newfstatat(3, "", {st_mode=S_IFREG|0755, st_size=1926232, ...}, AT_EMPTY_P'
    'ATH) = 0',
    '1087  openat(AT_FDCWD, "/etc/bundle-trace-probe.conf", O_RDONLY) = -1 ENOENT (No'
    ' such file or directory)',
    '1087  newfstatat(1, "", {st_mode=S_IFIFO|0600, st_size=0, ...}, AT_EMPTY_PATH) ='
    ' 0',
    '1087  openat(AT_FDCWD, "/etc/hosts", O_RDONLY) = 3',
    '1087  chdir("/etc")                     = 0',
    '1087  openat(AT_FDCWD, "passwd", O_RDONLY) = 4',
    '1087  openat(AT_FDCWD, "weird \\"name\\"\\n\\33", O_RDONLY) = -1 ENOENT (No such fil'
    'e or directory)',
    '1087  clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGC'
    'HLD, child_tidptr=0x7f78cb59ea10) = 3',
    '1088  execve("/bin/sh", ["sh", "-c", "exit 0"], 0x7ffc7adda338 /* 4 vars */) = 0',
    '1088  readlink("/proc/self/exe", "/bin/sh", 4096) = 7',
    '1087  --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=3, si_uid=0, si_'
    'status=0, si_utime=0, si_stime=0} ---',
)
# A program with four threads, each opening absent files (pid 4383 main, 4384 a thread).
THREADED = (
    '4383  execve("./thr", ["./thr"], 0x7ffc74cedfe0 /* 35 vars */) = 0',
    '4383  clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLO'
    'NE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f'
    '6ea797d990, parent_tid=0x7f6ea797d990, exit_signal=0, stack=0x7f6ea717d000, stac'
    'k_size=0x7fff80, tls=0x7f6ea797d6c0} => {parent_tid=[4384]}, 88) = 4384',
    '4384  openat(AT_FDCWD, "/tmp/trB/absent-0-0", O_RDONLY) = -1 ENOENT (No such fil'
    'e or directory)',
    '4384  access("/etc/hostname", R_OK <unfinished ...>',
    '4383  clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLO'
    'NE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f'
    '6ea717c990, parent_tid=0x7f6ea717c990, exit_signal=0, stack=0x7f6ea697c000, stac'
    'k_size=0x7fff80, tls=0x7f6ea717c6c0} <unfinished ...>',
    '4384  <... access resumed>)             = 0',
    '4384  openat(AT_FDCWD, "/tmp/trB/absent-0-1", O_RDONLY <unfinished ...>',
    '4383  <... clone3 resumed> => {parent_tid=[4385]}, 88) = 4385',
    '4384  <... openat resumed>)             = -1 ENOENT (No such file or directory)',
)
TOPS = ("/opt/probe", "/tmp/bundle-verify/probe")


def _by_path(facts: TraceFacts) -> dict[str, TracedFile]:
    return {traced.path: traced for traced in (*facts.missing, *facts.found)}


def test_only_the_programs_calls_outside_its_artifact_are_listed() -> None:
    facts = parse_trace(VERIFY_RUN, "/opt/probe/bin/probe", TOPS)
    assert facts.started and facts.processes == 2
    assert [f.path for f in facts.missing] == ["/etc/bundle-trace-probe.conf",
                                               '/etc/weird "name"\n\x1b']
    found = {f.path: (f.how, f.process) for f in facts.found}
    assert found == {"/etc/hosts": (OPENED, "probe"), "/etc": ("looked at", "probe"),
                     # relative to the cwd set by chdir("/etc")
                     "/etc/passwd": (OPENED, "probe"),
                     # by the forked copy of probe, before it was sh
                     "/bin/sh": ("executed", "probe")}
    listed = _by_path(facts)
    # bubblewrap's set-up (its /etc/ld.so.cache, /newroot), the artifact (also through
    # ".."), /proc and the sealed /dev/null/... path are not the program's outside files
    assert not [path for path in listed if "newroot" in path or "ld.so" in path
                or path.startswith(("/opt", "/proc", "/dev"))]
    assert listed["/etc/bundle-trace-probe.conf"].how == MISSING


def test_a_command_never_started_lists_nothing() -> None:
    facts = parse_trace(VERIFY_RUN, "/opt/other/bin/other", TOPS)
    assert not facts.started and facts.missing == facts.found == () and facts.calls == 0


def test_unfinished_calls_are_joined_with_their_resumed_halves() -> None:
    calls = list(completed_calls(THREADED))
    access = [c for c in calls if c.name == "access"]
    assert [(c.pid, c.path, c.result) for c in access] == [(4384, "/etc/hostname", "0")]
    opened = [(c.path, c.error) for c in calls if c.name == "openat"]
    assert opened == [("/tmp/trB/absent-0-0", "ENOENT"), ("/tmp/trB/absent-0-1", "ENOENT")]
    facts = parse_trace(THREADED, "./thr", ("/nowhere",))
    assert _by_path(facts)["/etc/hostname"] == TracedFile("/etc/hostname", "looked at", 1, "thr")
    assert facts.processes == 2


def test_strace_strings_are_decoded() -> None:
    assert decode_string(r'"a \"b\"\n\33\377\x41\\", O_RDONLY') == \
        ('a "b"\n\x1b\\xffA\\', ", O_RDONLY")
    assert decode_string('"/very/long"..., 4096') == (None, ", 4096")  # cut: not a path
    assert decode_string("0x7ffc7add9400, 0") == (None, "0x7ffc7add9400, 0")


PROGRAM = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static const char *outside;
static void *worker(void *arg) {
    char path[4096];
    for (int i = 0; i < 25; i++) {
        snprintf(path, sizeof path, "%s/absent-%ld-%d", outside, (long)arg, i);
        int fd = open(path, O_RDONLY);
        if (fd >= 0) close(fd);
    }
    return 0;
}
int main(int argc, char **argv) {
    char path[4096];
    outside = argv[1];
    snprintf(path, sizeof path, "%s/present.conf", outside); close(open(path, O_RDONLY));
    snprintf(path, sizeof path, "%s/present.conf/below", outside); open(path, O_RDONLY);
    snprintf(path, sizeof path, "%s/written.txt", outside);
    close(open(path, O_WRONLY | O_CREAT, 0644));
    snprintf(path, sizeof path, "%s/weird \"q\"\n\x1b\xff", outside); open(path, O_RDONLY);
    access(argv[0], X_OK);
    pthread_t threads[4];
    for (long i = 0; i < 4; i++) pthread_create(&threads[i], 0, worker, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(threads[i], 0);
    if (chdir(outside) == 0) close(open("relative.txt", O_RDONLY));
    chdir("/");
    int dir = open(outside, O_RDONLY | O_DIRECTORY);
    faccessat(dir, "by-dirfd.conf", R_OK, 0);
    fchdir(dir);
    open("after-fchdir.conf", O_RDONLY);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
    waitpid(pid, 0, 0);
    return 0;
}
"""


def test_a_real_strace_run_of_a_gcc_program(tmp_path: Path) -> None:
    """strace as verify starts it, on a program doing each kind of call, threads and a
    child: every call is found, relative paths against the cwd, its own top left out."""
    strace = need_tool("strace")
    program = gcc(tmp_path / "top" / "bin" / "tracee", PROGRAM, "-pthread")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "present.conf").write_text("x\n")
    (outside / "relative.txt").write_text("y\n")
    output = tmp_path / "strace.txt"
    ran = subprocess.run([*strace_command(strace, str(output)), str(program), str(outside)],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    text = output.read_text(errors="replace")
    facts = parse_trace(text.splitlines(), str(program), (str(tmp_path / "top"),))
    listed = _by_path(facts)
    base = str(outside)
    assert listed[f"{base}/present.conf"].how == OPENED
    assert listed[f"{base}/present.conf/below"].how == MISSING  # ENOTDIR
    assert listed[f"{base}/written.txt"].how == "opened for writing"
    assert listed[f'{base}/weird "q"\n\x1b\\xff'].how == MISSING
    assert listed[f"{base}/relative.txt"].how == OPENED  # after chdir: resolved
    assert listed[f"{base}/by-dirfd.conf"].how == MISSING  # against the directory's fd
    assert listed[f"{base}/after-fchdir.conf"].how == MISSING
    assert not [path for path in listed if not path.startswith("/")]
    absent = [f for f in facts.missing if "/absent-" in f.path]
    assert len(absent) == 100 and {f.process for f in absent} == {"tracee"}
    assert listed["/bin/true"] == TracedFile("/bin/true", "executed", 1, "tracee")
    assert not [path for path in listed if path.startswith(str(tmp_path / "top"))]
    assert facts.processes >= 6  # main, four threads, the child
    # the threads' calls were interleaved: some arrived in two halves and were joined
    assert "<unfinished ...>" in text and "resumed>" in text


def _facts(count: int, directories: int) -> TraceFacts:
    files = tuple(TracedFile(f"/usr/share/d{n % directories}/f{n}", MISSING, 1, "prog")
                  for n in range(count))
    return TraceFacts(files, (TracedFile("/etc/hosts", OPENED, 2, "prog"),), count + 2, 1, True)


def test_text_lists_missing_first_and_groups_many_by_directory() -> None:
    outcome = Outcome(0, "", "", 0.05)
    few = render_trace(Trace("at its prefix /opt/prog, under strace", outcome, _facts(2, 2)))
    assert few[0].startswith("TRACE at its prefix /opt/prog, under strace: exit 0 in 50 ms")
    assert few[2:] == ["    missing  /usr/share/d0/f0  (looked for by prog)",
                       "    missing  /usr/share/d1/f1  (looked for by prog)",
                       "    found    /etc/hosts  (opened by prog, 2 calls)"]
    many = render_trace(Trace("t", outcome, _facts(60, 3)))
    grouped = [line for line in many if line.startswith("    missing")]
    assert grouped[0] == ("    missing  /usr/share/d0/: 20 (looked for): f0, f3, f6, "
                          "f9 and 16 more")
    assert len(grouped) == 3
    scattered = render_trace(Trace("t", outcome, _facts(SHOWN_FILES + 30, SHOWN_FILES + 5)))
    tail = [line for line in scattered if line.startswith("    missing")][-1]
    # 25 directories of two files: the first 20 by name shown, 5 (10 files) summed up
    assert tail == "    missing  and 10 more in 5 more directories (verify --json lists all)"


def test_damaged_lines_never_stop_the_parser() -> None:
    """Paths are the program's to choose and a killed strace cuts its last line: any
    damage to the captured lines gives a result, never an exception."""
    rng = random.Random(20)
    lines = [*VERIFY_RUN, *THREADED]
    for _ in range(500):
        damaged = []
        for line in rng.sample(lines, 12):
            chars = list(line)
            for _ in range(rng.randint(0, 4)):
                chars[rng.randrange(len(chars))] = rng.choice('\\"()=, <>.x07-?')
            damaged.append("".join(chars)[:rng.randint(0, len(chars))])
        facts = parse_trace([VERIFY_RUN[6], *damaged], "/opt/probe/bin/probe", TOPS)
        assert facts.started
