"""The Patch: what patch.py writes into a copy, decided by the plan.

A module of its own because it crosses into the patch worker (pickled with each job): the
worker imports only this, not plan.py and the resolver behind it (47 ms of the worker's
imports, which come before LIEF's on a small build's critical path).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Patch:
    """What patch.py does to a copy: a new PT_INTERP and/or DT_RPATH (RUNPATH removed)."""

    interpreter: str | None
    rpath: str
