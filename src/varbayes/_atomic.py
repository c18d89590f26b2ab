"""Every write of varbayes: output-path rules, atomic renames, the umask, and signals.

* :func:`check_file_out`: ``-`` is standard output; an existing FIFO or character device is
  written into, never replaced; ``force`` replaces only a regular file; a directory, link,
  socket or block device is refused, and a path ending in ``/`` names a directory.
* Outputs go to a hidden sibling ``.NAME.PID.HEX.tmp`` (``.tmpdir``: a directory; ``.old``: one
  swapped out), renamed into place with SIGINT, SIGTERM and SIGHUP held back. Files are
  ``0o666 & ~umask``, directories ``0o777 & ~umask``. The CLI turns SIGTERM and SIGHUP into
  :class:`Terminated`, so ``finally`` blocks and :func:`cleanup` remove temporary paths; what
  SIGKILL leaves, the next write to the same path removes once its PID is dead.
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

__all__ = ["STDOUT", "OutputFile", "Terminated", "check_creatable", "check_file_out",
           "check_terminated", "cleanup", "commit_dir", "deferred_signals", "discard",
           "fsync_path", "new_temp_dir", "remove_stale", "terminate_on_signals", "terminated_by",
           "umask", "write_text"]

PathLike = str | os.PathLike[str]
STDOUT = "-"  # the --out value that means standard output
_LIVE: set[Path] = set()  # temporary paths of this process that still exist
_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


def umask() -> int:
    """The process umask (read from /proc where possible, so it is never changed)."""
    with contextlib.suppress(OSError, ValueError, IndexError, StopIteration), open(
        "/proc/self/status", encoding="ascii"
    ) as fh:
        return next(int(ln.split()[1], 8) for ln in fh if ln.startswith("Umask:"))
    mask = os.umask(0o022)  # no /proc: set it and put it back
    os.umask(mask)
    return mask


def fsync_path(path: Path) -> None:
    """Flush a file or directory to disk (directories: where the OS allows it)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    with contextlib.suppress(OSError):  # e.g. directories on Windows
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{tag}"


def _alive(pid: int) -> bool:
    try:  # pid 0 is this process group: alive
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it runs, under another user
        pass
    return True


def remove_stale(path: Path, allowed: Collection[str] = ()) -> list[Path]:
    """Remove the temporary siblings ``.NAME.PID.HEX.*`` of ``path`` whose PID is dead.

    Only this user's regular files, and directories holding only files named in ``allowed``.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.(tmp|tmpdir|old)")
    removed = []
    for name in os.listdir(path.parent) if os.access(path.parent, os.R_OK | os.X_OK) else []:
        m = pattern.fullmatch(name)
        if m is None or _alive(int(m.group(1))):
            continue
        p = path.parent / name
        with contextlib.suppress(OSError):
            st = os.lstat(p)
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                continue
            if m.group(2) == "tmp" and stat.S_ISREG(st.st_mode):
                p.unlink()
                removed.append(p)
            elif m.group(2) != "tmp" and stat.S_ISDIR(st.st_mode) and all(
                n in allowed and stat.S_ISREG(os.lstat(p / n).st_mode) for n in os.listdir(p)
            ):
                shutil.rmtree(p)
                removed.append(p)
    return removed


def discard(path: Path) -> None:
    """Remove a temporary file or directory of this process, if it still exists."""
    with contextlib.suppress(OSError):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    _LIVE.discard(path)


def cleanup() -> None:
    """Remove every temporary path this process still has (after a signal)."""
    for path in sorted(_LIVE, key=str):
        discard(path)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP (in this thread) until the block ends."""
    block = getattr(signal, "pthread_sigmask", None)
    old = block(signal.SIG_BLOCK, _SIGNALS) if block else None
    try:
        yield
    finally:
        if block:
            block(signal.SIG_SETMASK, old)


#: The SIGTERM or SIGHUP that :func:`terminate_on_signals` caught (empty: none yet).
_FIRED: list[int] = []


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Raise :class:`Terminated` on the first SIGTERM or SIGHUP, so cleanup code runs.

    Python runs a signal handler between bytecodes, also inside Python code that C code calls
    (imports of extension modules, callbacks); C code that clears errors there loses the
    :class:`Terminated`. The signal stays recorded, so :func:`check_terminated` (called once an
    epoch and once a chunk by the long loops) and :func:`terminated_by` still end the command.
    """
    _FIRED.clear()

    def handler(signum: int, frame: Any) -> None:
        if not _FIRED:  # a second signal while cleaning up is ignored
            _FIRED.append(signum)
            raise Terminated(signum)

    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, handler) for s in _SIGNALS[1:] if main}  # SIGTERM, SIGHUP
    try:
        yield
    finally:
        _FIRED.clear()
        for signum, previous in old.items():
            signal.signal(signum, previous)


def terminated_by() -> int | None:
    """The SIGTERM or SIGHUP caught by the current :func:`terminate_on_signals`, if any."""
    return _FIRED[0] if _FIRED else None


def check_terminated() -> None:
    """Raise :class:`Terminated` if a signal was caught but its exception was lost (no-op else)."""
    if _FIRED:
        raise Terminated(_FIRED[0])


def check_creatable(path: Path, *, parents: bool = False) -> None:
    """Fail unless ``path`` can be created (``parents``: with its missing parents)."""
    ancestor = path.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {ancestor} is not a directory")
    if ancestor != path.parent and not parents:
        raise FileNotFoundError(f"cannot write {path}: directory {path.parent} does not exist")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: directory {ancestor} is not writable")


#: Device majors of terminals (tty, console and /dev/tty, pseudo-terminals) on Linux.
_TTY_MAJORS = frozenset({4, 5, *range(136, 144)})


def _harmless_device(p: Path, st: os.stat_result) -> bool:
    """Whether streaming into the character device ``p`` is what the user can mean."""
    return os.path.realpath(p) == os.devnull or os.major(st.st_rdev) in _TTY_MAJORS


def check_file_out(path: PathLike, *, force: bool, parents: bool = False) -> str:
    """``"stdout"``, ``"stream"``, ``"new"`` or ``"replace"`` for ``path``; else an OSError."""
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
            raise FileExistsError(f"{p} is a dangling symbolic link; not written") from None
        check_creatable(p, parents=parents)
        return "new"
    if stat.S_ISFIFO(st.st_mode) or (stat.S_ISCHR(st.st_mode) and _harmless_device(p, st)):
        return "stream"
    if stat.S_ISCHR(st.st_mode):
        raise FileExistsError(f"{p} is a character device; varbayes writes only into /dev/null, "
                              "a terminal or a FIFO (or - for standard output)")
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"cannot write {p}: it is a directory; give a file name")
    if not stat.S_ISREG(st.st_mode):
        kind = {stat.S_IFBLK: "block device", stat.S_IFSOCK: "socket"}.get(
            stat.S_IFMT(st.st_mode), "special file")
        raise FileExistsError(f"{p} is a {kind}; varbayes never replaces a special file")
    if p.is_symlink():
        raise FileExistsError(f"{p} is a symbolic link; refusing to replace it (even with "
                              "--force); give the file's own path, or - for standard output")
    if not force:
        raise FileExistsError(f"{p} already exists; pass --force to overwrite it")
    check_creatable(p)
    return "replace"


class OutputFile(contextlib.AbstractContextManager["OutputFile"]):
    """A file written atomically (temporary sibling, ``os.replace`` on success) or streamed."""

    def __init__(self, path: PathLike, *, force: bool = True, binary: bool = False,
                 parents: bool = False) -> None:
        self.how = check_file_out(path, force=force, parents=parents)
        self.path, self.force, self._tmp = Path(path), force, None
        opts: dict[str, Any]
        mode, opts = ("wb", {}) if binary else ("w", {"encoding": "utf-8", "newline": ""})
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

    def commit(self) -> Path:
        """Finish the file: flush a stream, or move the temporary file into place."""
        self.fh.flush()
        if self._tmp is not None:
            os.fsync(self.fh.fileno())
        if self.how != "stdout":
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

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_text(path: PathLike, text: str, *, force: bool = True, parents: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (see :class:`OutputFile`)."""
    with OutputFile(path, force=force, parents=parents) as out:
        out.fh.write(text)
    return out.path


def new_temp_dir(path: Path, allowed: Collection[str]) -> Path:
    """Create the temporary sibling directory of ``path`` (stale ones removed first)."""
    remove_stale(path, allowed)
    tmp = _temp(path, "tmpdir")
    tmp.mkdir()  # mode 0o777 & ~umask, unlike tempfile.mkdtemp
    _LIVE.add(tmp)
    return tmp


def commit_dir(tmp: Path, path: Path, *, replace: bool,
               exchange: Callable[[Path, Path], bool]) -> None:
    """Move ``tmp`` to ``path``; ``replace``: swap the old one out to ``tmp`` or delete it.

    First its files (safetensors writes 0600) and itself get the modes the umask allows.
    """
    mask = umask()
    for name in os.listdir(tmp):
        if stat.S_ISREG(os.lstat(tmp / name).st_mode):
            os.chmod(tmp / name, 0o666 & ~mask)
    os.chmod(tmp, 0o777 & ~mask)
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
        fsync_path(path.parent)
    if aside is not None:
        discard(aside)
