"""What differs between Linux, macOS and Windows, in one place: each operating-system feature the
file guarantees use, with the nearest safe fallback where it is missing. docs/untrusted.md says
what is weaker there.

- `O_NOFOLLOW` (no Windows): opening a name we made up ourselves refuses a symbolic link put
  there. Without it, the temporary file is still created with O_CREAT | O_EXCL, which fails on
  any existing name, links included; only the lock file's second open could follow a link.
- `set_mode` (os.fchmod, no Windows): the new file's permissions by descriptor; else by name,
  which is safe here because the name is our own new temporary file.
- `try_lock` (fcntl.flock, no Windows): an exclusive lock; msvcrt.locking on Windows; where
  neither exists, no lock (two runs on one output are then not refused).
- `memory_limit` (os.sysconf, resource: no Windows): the memory a run may use, to refuse a run
  that cannot fit; None where the system does not say, and the check is skipped.
- `process_alive` (os.kill(pid, 0): on Windows that would send Ctrl-C): whether the writer of a
  temporary file still runs; on Windows assumed alive, so its file is kept.
"""

from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # not Windows
    msvcrt = None
try:
    import resource
except ImportError:  # Windows
    resource = None

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def set_mode(fd: int, path: str | os.PathLike, mode: int) -> None:
    """chmod the open file fd, which is our own new file at path."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:
        os.chmod(path, mode)


def try_lock(fd: int) -> bool | None:
    """An exclusive lock on the open file fd, without waiting: True when taken, False when
    another process holds it, None when this system offers no lock. Closing fd releases it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        elif msvcrt is not None:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            return None
    except OSError:
        return False
    return True


def memory_limit() -> int | None:
    """Bytes a process may use: physical memory, lowered by RLIMIT_AS where one is set; None
    when the system does not say."""
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            available = min(available, soft)
    return available


def process_alive(pid: int) -> bool:
    """Whether process pid still runs (True when it cannot be told)."""
    if os.name == "nt":  # os.kill(pid, 0) is not a probe there: it sends CTRL_C_EVENT
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True
