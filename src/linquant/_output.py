"""Output files that never lose a user's data.

:func:`replacing` writes a new file beside the target and renames it over the target once it
is complete, so that an error or Ctrl-C leaves the target as it was and no temporary file
behind; :func:`remove_temporaries` does the same for a signal handler that exits at once. A
symlink is written through (the file it points to is replaced, the link stays), an
overwritten file keeps its permissions (and its owner where the process may set it), and a
FIFO or character device (``/dev/null``, a terminal) is written in place, never replaced by
a regular file. Every error names the user's path, never the temporary file.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


def existing(path: str | os.PathLike[str]) -> os.stat_result | None:
    """The status of the file at ``path``, symlinks followed; None when there is none."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


@contextmanager
def _naming(path: str) -> Iterator[None]:
    """An OSError raised inside is raised again naming ``path``, the user's name for the file."""
    try:
        yield
    except OSError as error:
        raise type(error)(error.errno, error.strerror, path) from None


class _File(io.BufferedWriter):
    """A file open for writing on ``descriptor`` whose errors name the user's ``path``."""

    def __init__(self, descriptor: int, path: str) -> None:
        super().__init__(io.FileIO(descriptor, "wb"))
        self.path = path

    def write(self, buffer: ReadableBuffer, /) -> int:
        with _naming(self.path):
            written = super().write(buffer)
        return written

    def flush(self) -> None:  # also called by close()
        with _naming(self.path):
            super().flush()

    def seek(self, target: int, whence: int = 0, /) -> int:  # writes what is buffered
        with _naming(self.path):
            position = super().seek(target, whence)
        return position


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A new file that replaces ``path`` once written in full: an error leaves ``path`` as it
    was, and removes the temporary file.

    The temporary file is created in the directory of the file ``path`` names, symlinks
    followed, so that the rename is atomic and a link stays a link. A new file has the
    permissions of ``open`` (0o666 less the umask); an overwritten one keeps its mode and,
    where allowed, its owner, and is flushed to disk before the rename, so that a crash
    leaves the old file or the new one. A FIFO or character device is written in place; a
    directory or another kind of file raises OSError.
    """
    name = os.fspath(path)
    old = existing(name)
    if old is not None and not stat.S_ISREG(old.st_mode):
        with _naming(name):
            descriptor = _open_in_place(name, old.st_mode)
        with _File(descriptor, name) as file:
            yield file
        return
    target = os.path.realpath(name)
    directory, base = os.path.split(target)
    temporary = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    # Never more open than the file it becomes: the umask may only take permissions away.
    mode = 0o666 if old is None else stat.S_IMODE(old.st_mode) & 0o777
    # The name is drawn at random, so it is this call's file unless O_EXCL refused it: a flag
    # set after the open would miss a signal that arrives between the open and the flag.
    ours = True
    _temporaries.add(temporary)
    try:
        try:
            with _naming(name):
                descriptor = os.open(temporary, flags, mode)
        except FileExistsError:
            ours = False
            raise
        with _File(descriptor, name) as file:
            yield file
            if old is not None:
                file.flush()
                with _naming(name):
                    _keep_status(file.fileno(), temporary, old)
        with _naming(name):
            os.replace(temporary, target)
    except BaseException:
        if ours:
            with suppress(OSError):  # the error that got here is the one to report
                os.unlink(temporary)
        raise
    finally:
        _temporaries.discard(temporary)


_temporaries: set[str] = set()  # created (or about to be) by replacing(), not yet renamed


def remove_temporaries() -> None:
    """Remove every temporary file :func:`replacing` has open, for a signal handler that ends
    the process at once (no ``finally`` clause runs after ``os._exit``)."""
    for temporary in list(_temporaries):
        with suppress(OSError):  # already renamed or removed, or never created
            os.unlink(temporary)


def _open_in_place(path: str, mode: int) -> int:
    """A descriptor open for writing on the FIFO or character device ``path``, which is
    neither created nor truncated; OSError for a directory or another kind of file."""
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        raise OSError(errno.EINVAL, "not a regular file, FIFO or character device", path)
    return os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))


def _keep_status(descriptor: int, temporary: str, old: os.stat_result) -> None:
    """Give the written ``temporary`` file the owner and mode of the file it replaces, its
    data on disk first."""
    os.fsync(descriptor)
    if hasattr(os, "fchown"):
        with suppress(PermissionError):  # only root may give a file to another user
            os.fchown(descriptor, old.st_uid, old.st_gid)
    os.chmod(temporary, stat.S_IMODE(old.st_mode))  # after chown, which clears set-id bits
