"""How varbayes writes files and directories: atomically, within the umask, and signal-safely.

Every output of varbayes (the model directory of ``io.save``, predicted CSV, JSON results,
demo figures) goes through this module, so they all follow the same rules:

* **Output paths.** :func:`check_file_out` decides what happens to a file path before any work:
  ``-`` streams to standard output, and an existing FIFO or character device (``/dev/null``) is
  written into, never replaced. An existing regular file is replaced only with ``force``; a
  directory, symbolic link, block device or socket is refused, even with ``force``, and a path
  ending in ``/`` names a directory. Nothing varbayes did not write is ever unlinked.
* **Atomic.** Regular outputs are written to a hidden temporary sibling named
  ``.NAME.PID.HEX.tmp`` (files) or ``.NAME.PID.HEX.tmpdir`` (directories), then renamed into
  place. The rename itself runs with SIGINT, SIGTERM and SIGHUP blocked.
* **Signals.** Temporary paths are registered while they exist; the CLI turns SIGTERM and
  SIGHUP into :class:`Terminated` (SIGINT already raises ``KeyboardInterrupt``), so ``finally``
  blocks remove them, and :func:`cleanup` removes any that remain. SIGKILL cannot be caught: it
  can leave a temporary sibling, which the next write to the same path removes once the process
  named by its PID is dead (:func:`remove_stale`).
* **Umask.** Files are created ``0o666 & ~umask`` and directories ``0o777 & ~umask``; files that
  other libraries create inside a temporary directory are set to these modes before the rename.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Any

STDOUT = "-"
"""The ``--out`` value that means standard output."""
_LIVE: set[Path] = set()  # temporary paths of this process that still exist
_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


# --------------------------------------------------------------------------- modes


def umask() -> int:
    """The process umask (read from /proc where possible, so it is never changed)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: Path) -> None:
    """Set ``path`` (and, for a directory, everything in it) to the modes the umask allows."""
    mask = umask()
    for root, dirs, files in os.walk(path) if path.is_dir() else [(path.parent, [], [path.name])]:
        for name in files:
            os.chmod(Path(root, name), 0o666 & ~mask, follow_symlinks=False)
        for name in dirs:
            os.chmod(Path(root, name), 0o777 & ~mask)
    if path.is_dir():
        os.chmod(path, 0o777 & ~mask)


def fsync_path(path: Path) -> None:
    """Flush a file or directory to disk (directories: where the OS allows it)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- temporary paths


def _temp(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{tag}"


def _alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, under another user
        return True
    return True


def remove_stale(path: Path, allowed: Collection[str] = ()) -> list[Path]:
    """Remove the temporary siblings of ``path`` left by dead varbayes processes.

    Only names of the form ``.NAME.PID.HEX.{tmp,tmpdir,old}`` whose PID is not running are
    touched: a regular file (``tmp``), or a directory that holds only regular files named in
    ``allowed``, owned by this user. Returns what was removed.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.(tmp|tmpdir|old)")
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or _alive(int(m.group(1))):
            continue
        p = path.parent / name
        try:
            st = os.lstat(p)
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                continue
            if m.group(2) == "tmp" and stat.S_ISREG(st.st_mode):
                p.unlink()
            elif m.group(2) != "tmp" and stat.S_ISDIR(st.st_mode) and all(
                e.name in allowed and e.is_file(follow_symlinks=False) for e in _entries(p)
            ):
                shutil.rmtree(p)
            else:
                continue
        except OSError:
            continue
        removed.append(p)
    return removed


def _entries(path: Path) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return list(it)


def discard(path: Path) -> None:
    """Remove a temporary file or directory of this process, if it still exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    _LIVE.discard(path)


def cleanup() -> None:
    """Remove every temporary path this process still has (after a signal)."""
    for path in sorted(_LIVE, key=str):
        discard(path)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP (in this thread) until the block ends."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:
        yield
        return
    old = mask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Raise :class:`Terminated` on the first SIGTERM or SIGHUP, so cleanup code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not fired:  # a second signal while cleaning up is ignored
            fired.append(signum)
            raise Terminated(signum)

    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    old = {n: signal.signal(getattr(signal, n), handler) for n in names}
    try:
        yield
    finally:
        for n, h in old.items():
            signal.signal(getattr(signal, n), h)


# --------------------------------------------------------------------------- output paths


def check_creatable(path: Path, *, parents: bool = False) -> None:
    """Fail unless ``path`` can be created (``parents``: its missing parents too)."""
    ancestor = path.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {ancestor} is not a directory")
    if ancestor != path.parent and not parents:
        raise FileNotFoundError(f"cannot write {path}: directory {path.parent} does not exist")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: directory {ancestor} is not writable")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symbolic link")):
        if test(mode):
            return name
    return "special file"


def check_file_out(path: str | os.PathLike[str], *, force: bool, parents: bool = False) -> str:
    """What writing the file ``path`` will do: ``"stdout"``, ``"stream"``, ``"new"``, ``"replace"``.

    Raises
    ------
    FileExistsError
        For an existing regular file without ``force``, and, even with ``force``, for a
        symbolic link to a file, a block device, a socket or another special file.
    IsADirectoryError
        For a directory, or a path ending in ``/`` (or ``.``, ``..``).
    FileNotFoundError, NotADirectoryError, PermissionError
        If the file cannot be created (see :func:`check_creatable`).
    """
    text = os.fspath(path)
    if text == STDOUT:
        return "stdout"
    if not text or os.path.basename(text) in ("", ".", ".."):
        raise IsADirectoryError(f"cannot write {text!r}: it names a directory; give a file name")
    p = Path(text)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.lexists(p):
            raise FileExistsError(
                f"{p} is a dangling symbolic link; refusing to write through it"
            ) from None
        check_creatable(p, parents=parents)
        return "new"
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        return "stream"
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"cannot write {p}: it is a directory; give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise FileExistsError(
            f"{p} is a {_kind(st.st_mode)}; varbayes never replaces a special file (even with "
            "--force)"
        )
    if p.is_symlink():
        raise FileExistsError(
            f"{p} is a symbolic link; refusing to replace it (even with --force); give the "
            "file's own path, or - for standard output"
        )
    if not force:
        raise FileExistsError(f"{p} already exists; pass --force to overwrite it")
    check_creatable(p)
    return "replace"


class OutputFile:
    """A file written atomically (a temporary sibling, then ``os.replace``) or streamed.

    Use it as a context manager: ``path`` gets the content when the block ends without an
    error; otherwise the temporary file is removed (a stream keeps what was written).

    Parameters
    ----------
    path : str or path-like
        Target, checked by :func:`check_file_out`.
    force : bool, default=True
        Replace an existing regular file.
    binary : bool, default=False
        Binary handle instead of UTF-8 text (text: ``newline=""``, as :mod:`csv` needs).
    parents : bool, default=False
        Create missing parent directories.
    """

    def __init__(self, path: str | os.PathLike[str], *, force: bool = True,
                 binary: bool = False, parents: bool = False) -> None:
        self.how = check_file_out(path, force=force, parents=parents)
        self.path = Path(path)
        self.force, self._tmp = force, None
        opts: dict[str, Any] = {} if binary else {"encoding": "utf-8", "newline": ""}
        mode = "wb" if binary else "w"
        if self.how == "stdout":
            self.fh: IO[Any] = sys.stdout.buffer if binary else sys.stdout
        elif self.how == "stream":  # never O_CREAT: a FIFO or device that vanished is an error
            self.fh = os.fdopen(os.open(self.path, os.O_WRONLY), mode, **opts)
        else:
            if parents:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale(self.path)
            self._tmp = _temp(self.path, "tmp")
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask
            _LIVE.add(self._tmp)
            self.fh = os.fdopen(fd, mode, **opts)

    @property
    def streamed(self) -> bool:
        """Whether the output goes into a stream (standard output, FIFO, device)."""
        return self._tmp is None

    def commit(self) -> Path:
        """Finish the file: flush a stream, or move the temporary file into place."""
        if self.how == "stdout":
            self.fh.flush()
            return self.path
        self.fh.flush()
        if self._tmp is not None:
            os.fsync(self.fh.fileno())
        self.fh.close()
        if self._tmp is not None:
            with deferred_signals():
                try:  # look again: never rename over a FIFO, device or link that appeared since
                    if check_file_out(self.path, force=self.force) not in ("new", "replace"):
                        raise FileExistsError(f"{self.path} changed while it was written")
                    os.replace(self._tmp, self.path)
                finally:
                    discard(self._tmp)
        return self.path

    def abort(self) -> None:
        """Close, and remove the temporary file."""
        if self.how != "stdout":
            self.fh.close()
        if self._tmp is not None:
            discard(self._tmp)

    def __enter__(self) -> OutputFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_text(path: str | os.PathLike[str], text: str, *, force: bool = True,
               parents: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (see :class:`OutputFile`)."""
    with OutputFile(path, force=force, parents=parents) as out:
        out.fh.write(text)
    return out.path


# --------------------------------------------------------------------------- directories


def new_temp_dir(path: Path, allowed: Collection[str]) -> Path:
    """Create the temporary sibling directory of ``path`` (stale ones removed first)."""
    remove_stale(path, allowed)
    tmp = _temp(path, "tmpdir")
    tmp.mkdir()  # mode 0o777 & ~umask, unlike tempfile.mkdtemp
    _LIVE.add(tmp)
    return tmp


def commit_dir(tmp: Path, path: Path, *, replace: bool,
               exchange: Callable[[Path, Path], bool]) -> None:
    """Move the finished directory ``tmp`` to ``path``; with ``replace``, swap out the old one.

    The old directory ends up at ``tmp`` (after ``exchange``) or is deleted here.
    """
    honour_umask(tmp)
    fsync_path(tmp)
    aside = None
    with deferred_signals():
        if replace:
            if not exchange(tmp, path):  # fall back: rename the old one aside, then the new in
                aside = _temp(path, "old")
                _LIVE.add(aside)
                os.rename(path, aside)
                try:
                    os.rename(tmp, path)
                except BaseException:
                    os.rename(aside, path)  # put the old one back
                    _LIVE.discard(aside)
                    raise
        else:
            if path.is_dir():  # an empty directory is replaced
                path.rmdir()
            os.rename(tmp, path)
            _LIVE.discard(tmp)
        fsync_path(path.parent)
    if aside is not None:
        discard(aside)
