"""What the benchmarks read of their processes: CPU time and resident memory, from ``/proc``.

Linux only, as the benchmarks are; no dependency needed for two numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s direct children (gunicorn's workers, say)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids = [pid]
    for child in children(pid):
        pids += tree(child)
    return pids


def cpu_seconds(pids) -> float:
    """User plus system CPU time the processes ``pids`` have used so far (those that exited count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # utime and stime are fields 14 and 15 of stat(5); fields[0] is field 3.
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * _PAGE / 2**20
