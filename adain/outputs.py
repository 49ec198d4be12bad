"""The one output guard: what every command that writes checks first, and how it writes.

:func:`check_output` and :func:`check_folder` refuse, before any work, an output that is one of
the inputs, holds one of them, or exists without ``overwrite``. :func:`write_atomically` and
:func:`write_folder` then write beside the destination and rename into place, so a crash leaves
the old output or the new one, never a mix. Files and folders get the user's umask (like
``open``), not ``mkstemp``'s 0600/0700. With ``overwrite`` a folder is replaced only when it
holds nothing but the files the command itself writes: nothing else is ever deleted. Every
error is one line naming the user's path, never a temporary name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

PathLike = str | os.PathLike[str]


def _resolved(paths: Iterable[PathLike]) -> list[Path]:
    return [Path(p).expanduser().resolve() for p in paths]


def _check_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder (else mkdir fails: Errno 17)."""
    for parent in Path(os.path.abspath(path)).parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{parent} is a file, not a folder: choose another {what}")
            return


def _make_parent(path: Path, what: str) -> None:
    _check_parent(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(
            f"cannot create the folder {path.parent}: a file is in the way; choose another {what}"
        ) from None
    except OSError as error:
        raise OSError(f"cannot create the folder {path.parent}: {error.strerror}") from None


def check_output(
    path: PathLike, inputs: Iterable[PathLike] = (), overwrite: bool = False, what: str = "-o"
) -> Path:
    """Refuse an output file that would replace an input or, without ``overwrite``, any file.

    Args:
        path: the file to write.
        inputs: files the command reads; the output never replaces one, ``overwrite`` or not.
        overwrite: replace an existing file (``--overwrite``).
        what: the option naming ``path``, quoted in the messages.

    Raises:
        ValueError: one line naming ``path`` and what to do.
    """
    path = Path(path)
    if path.expanduser().resolve() in _resolved(inputs):
        raise ValueError(f"{path} is one of the inputs: choose another {what}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give {what} a file name")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise ValueError(f"{path} already exists: pass --overwrite or choose another {what}")
    _check_parent(path, what)
    return path


def _temporary_name(path: Path, kind: str) -> Path:
    # A leading dot: batch inputs (adain.inputs.expand_paths) never take a leftover as an image.
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.{kind}")


# What _temporary_name adds to a file's name: the bytes a name must leave free for its writer.
TEMPORARY_EXTRA_BYTES = len(".") + len(".01234567.tmp")
_TEMPORARY_FILE = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp")


def temporary_file_of(name: str) -> str | None:
    """The output a file named ``name`` is a temporary file of (:func:`write_atomically`'s
    ``.NAME.<8 hex>.tmp``), or ``None``: what a killed run leaves behind."""
    match = _TEMPORARY_FILE.fullmatch(name)
    return match["name"] if match else None


# A temporary file younger than this may belong to a writer that has created it and not yet
# locked it (the two are separate calls): never removed.
_NEWBORN_SECONDS = 10.0


def remove_if_abandoned(path: PathLike) -> bool:
    """Delete a temporary file (:func:`temporary_file_of`) whose writer died, and say so.

    :func:`write_atomically` holds an ``flock`` on its temporary file until it is renamed, and
    the kernel drops that lock when the writer exits, SIGKILL included. So a file that can be
    locked here is a dead run's leftover, while one that cannot belongs to a run still writing
    into the same folder, and stays.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # gone already, a link, or not ours to read
        return False
    try:
        if time.time() - os.fstat(fd).st_mtime < _NEWBORN_SECONDS:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer holds it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            return True
        return False
    finally:
        os.close(fd)


def _umask() -> int:
    # Linux says it without changing it; os.umask() can only be read by setting it, which
    # would race with other threads creating files.
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: PathLike) -> None:
    """Give a file another library created 0600 (safetensors' ``save_file``) the mode ``open``
    would have given it: 0o666 less the umask."""
    os.chmod(path, 0o666 & ~_umask())


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is still atomic
    finally:
        os.close(fd)


def write_atomically(path: PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(handle)`` on a temporary sibling of ``path``, fsync it, rename it over ``path``.

    The file is created with mode 0o666 less the umask, as ``open`` would. Check the
    destination first with :func:`check_output`.

    Raises:
        OSError: one line naming ``path`` (never the temporary file).
    """
    path = Path(path)
    _make_parent(path, "-o")
    tmp = _temporary_name(path, "tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        # Held until the rename: remove_if_abandoned leaves a live writer's file alone.
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if isinstance(error, IsADirectoryError) or path.is_dir():
            raise ValueError(f"{path} is a folder: give a file name") from None
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        # Not tmp.exists(): for a name near the file system's limit, the temporary name itself
        # is too long and stat() raises instead of answering.
        with contextlib.suppress(FileNotFoundError, OSError):
            tmp.unlink()
    _fsync_folder(path.parent)
    return path


def _unexpected(folder: Path, names: frozenset[str]) -> Path | None:
    """The first entry of ``folder`` that the command does not write itself, if any."""
    for entry in sorted(folder.iterdir()):
        if entry.name not in names or entry.is_symlink() or not entry.is_file():
            return entry
    return None


def check_folder(
    path: PathLike,
    names: Iterable[str],
    inputs: Iterable[PathLike] = (),
    overwrite: bool = False,
    what: str = "-o",
) -> Path:
    """Refuse an output folder that :func:`write_folder` must not replace.

    An existing non-empty folder needs ``overwrite``, and even then it is replaced only when it
    holds nothing but ``names`` (the files the command writes). An input is never the folder
    or inside it, and an existing file is never replaced by a folder.

    Raises:
        ValueError: one line naming the path (or the unexpected file) and what to do.
    """
    path = Path(path)
    names = frozenset(names)
    target = path.expanduser().resolve()
    for source in _resolved(inputs):
        if source == target:
            raise ValueError(f"{path} is one of the inputs: choose another {what}")
        if target in source.parents:
            raise ValueError(f"{path} holds the input {source.name}: choose another {what}")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        if not overwrite:
            raise ValueError(f"{path} already exists: pass --overwrite or choose another {what}")
        raise ValueError(f"{path} is a file, not a folder: --overwrite replaces only folders")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise ValueError(f"{path} already exists: pass --overwrite or choose another {what}")
        if (entry := _unexpected(path, names)) is not None:
            raise ValueError(
                f"{path} holds {entry.name}, which this command does not write: it replaces "
                f"only a folder it wrote; move {entry.name} or choose another {what}"
            )
        cwd = Path.cwd().resolve()
        if cwd == target or target in cwd.parents:
            raise ValueError(f"{path} holds the current folder: choose another {what}")
    _check_parent(path, what)
    return path


def write_folder(
    path: PathLike,
    fill: Callable[[Path], None],
    names: Iterable[str],
    inputs: Iterable[PathLike] = (),
    overwrite: bool = False,
    what: str = "-o",
) -> Path:
    """Call ``fill(staging)`` on a new temporary sibling folder of ``path``, then swap it in.

    Args:
        path: destination folder, checked by :func:`check_folder` first.
        fill: writes the folder's files into the (empty, existing) staging folder it is given.
        names: every file name ``fill`` writes; with ``overwrite`` an existing folder holding
            only these is replaced (its files removed one by one), anything else is refused.
        inputs: files the command reads: never the folder, never inside it.
        overwrite: replace an existing non-empty folder.
        what: the option naming ``path``, quoted in the messages.

    Raises:
        ValueError: see :func:`check_folder`; OSError: one line naming ``path``.
    """
    path = Path(path)
    names = frozenset(names)
    check_folder(path, names, inputs, overwrite, what)
    _make_parent(path, what)
    staging = _temporary_name(path, "tmp")
    old = _temporary_name(path, "old")
    try:
        os.mkdir(staging, 0o777)  # the umask applies, as for any new folder
    except OSError as error:
        raise OSError(f"cannot create {path}: {error.strerror or error}") from None
    try:
        fill(staging)
        for entry in staging.iterdir():
            if entry.is_file():
                with open(entry, "rb") as handle:
                    os.fsync(handle.fileno())
        if path.is_dir():
            check_folder(path, names, inputs, overwrite, what)  # unchanged since the first check
            os.rename(path, old)
        try:
            os.rename(staging, path)
        except OSError:
            if old.exists():
                os.rename(old, path)
            if path.exists():
                raise ValueError(
                    f"{path} already exists: pass --overwrite or choose another {what}"
                ) from None
            raise
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        if staging.exists():  # ours alone: made above, filled by fill
            shutil.rmtree(staging)
    if old.exists():
        for entry in old.iterdir():
            if entry.name in names and not entry.is_dir():  # checked: never anything else
                entry.unlink()
        try:
            old.rmdir()
        except OSError:
            pass  # something appeared in it meanwhile: keep it rather than delete it
    _fsync_folder(path.parent)
    return path
