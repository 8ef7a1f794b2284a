"""How many CPUs this process may use: what the worker count and the benchmark's ceiling are sized by."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _quota(cgroup: Path) -> float | None:
    """CPUs allowed by a cgroup CPU quota (a container's --cpus or a pod's limit), None when there is none."""
    v2 = cgroup / "cpu.max"
    if v2.is_file():
        quota, _, period = v2.read_text().partition(" ")
        return None if quota == "max" else int(quota) / int(period)
    v1 = cgroup / "cpu" / "cpu.cfs_quota_us"
    if v1.is_file():
        quota_us = int(v1.read_text())
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    return None


def available_cpus(cgroup: Path = CGROUP) -> int:
    """The CPUs of this process's affinity mask, capped by a cgroup quota rounded up; at least 1."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota = _quota(cgroup)
    except (OSError, ValueError):  # an unreadable or unexpected file says nothing about a limit
        quota = None
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(cpus, 1)
