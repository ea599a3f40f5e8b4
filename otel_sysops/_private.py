"""State files (spool, SQLite, log positions) readable by the agent's user only, whatever the umask.

Directories are created 0700 and files 0600 with the mode given to the system call itself, so no
other local user can read an alert or a rollup even for an instant; an existing file or directory
we own is narrowed to that mode.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path, *, narrow_existing: bool = True) -> Path:
    """Create `path` (and missing parents) 0700; narrow it to 0700 if it exists and is ours
    (unless `narrow_existing` is False: a directory merely holding our file, like a home)."""
    missing: list[Path] = []
    at = path
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, DIR_MODE)
        _narrow(directory, DIR_MODE)
    if narrow_existing:
        _narrow(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty 0600 if it does not exist; narrow it to 0600 if it does and is ours."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
    _narrow(path, FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (a 0600 temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an older temporary file of the same name kept its mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _narrow(path: Path, mode: int) -> None:
    # Only what we own, and only narrower: a directory an operator shares on purpose (a parent
    # like /var/lib) is never touched, since only the directories we created or our own are.
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if st.st_uid == os.geteuid() and st.st_mode & 0o777 & ~mode:
        os.chmod(path, st.st_mode & 0o777 & mode)
