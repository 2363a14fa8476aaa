"""This process's peak RSS, resettable (Linux): for measuring what one operation costs in a
fresh process (the hostile-input cases, the translation benchmark)."""

from __future__ import annotations

__all__ = ["reset_peak", "status_kib"]


def status_kib(key: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmHWM``: this process's peak RSS, which, unlike
    ``ru_maxrss``, is not inherited from the parent across fork/exec)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def reset_peak() -> None:
    """Restart the peak-RSS watermark at the current RSS (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:  # pragma: no cover - then the peak includes the process's earlier life
        pass
