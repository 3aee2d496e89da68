"""The tests' peak-memory measure reads the command's peak, not pytest's."""

from __future__ import annotations

import subprocess
import sys

from support.paths import REPO

# A parent that grew to 600 MiB and let it go, then measures `/bin/true` both ways.
PARENT = r"""
import os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from support.measure import run_with_peak
grown = b"\1" * (600 << 20)
del grown
child = subprocess.Popen(["/bin/true"])
_, _, usage = os.wait4(child.pid, 0)
_, peak = run_with_peak(["/bin/true"])
print(usage.ru_maxrss, peak)
"""


def test_peak_is_the_commands_own_not_its_parents() -> None:
    """wait4 from a parent that once held 600 MiB reports those 600 MiB for /bin/true (the
    reason the helper exists; if the kernel stops doing that, this test says so); the
    helper reports /bin/true's few MiB."""
    result = subprocess.run([sys.executable, "-c", PARENT, str(REPO / "tests")],
                            capture_output=True, text=True, check=True)
    from_wait4, from_helper = (int(word) for word in result.stdout.split())
    print(f"/bin/true after a 600 MiB parent: wait4 {from_wait4} KiB, GNU time {from_helper} KiB")
    assert from_wait4 > 600 << 10
    assert from_helper < 20 << 10
