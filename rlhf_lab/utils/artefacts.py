"""Saving so that nothing saved is ever lost: every file and folder the kit writes goes through here.

A training run that is killed (Ctrl-C, an out-of-memory kill, a closed laptop) at any instant
must leave either the artefact as it was before the save or the new one, complete, and the
next save must work. The rules, as databases and editors apply them:

* **a file** is written to a temporary sibling (same folder, so the same file system), flushed
  and ``fsync``ed, then renamed over the target with ``os.replace``: a rename is atomic on POSIX
  and Windows, so a reader sees the old bytes or the new ones, never half of each. The folder
  is fsynced afterwards so the rename itself survives a power cut.
* **a folder** (a checkpoint, a reward model, a policy) is written whole into a hidden staging
  sibling ``.<name>.saving-<pid>-<id>``, every file and folder in it fsynced, then swapped with
  the old folder in one step: on Linux ``renameat2(RENAME_EXCHANGE)`` exchanges the two names
  atomically, and the old copy, now under the staging name, is deleted afterwards. Where the
  exchange is not available, the old folder is renamed aside to ``.<name>.old-<pid>-<id>`` and
  the new one renamed in; `recover` puts the old one back if a kill fell between those two
  renames, and the kit's loaders call it.
* leftovers of a killed save (staging and old copies of a process that no longer runs) are
  deleted by the next save of the same artefact; they are never the artefact itself.
* Ctrl-C during the swap is held back until the swap is done, so `SAVES` (what this process
  has saved) is always the truth; the command line reports it when it is interrupted.

Readers: `read_json` names the file and what to do when a file is damaged (`ArtefactError`).
This module imports nothing heavy, so the label store can use it and still start fast.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import sys
import threading
import uuid
from pathlib import Path



class Ledger:
    """What this process has saved or loaded, read as "everything since this mark".

        mark = SAVES.mark()
        ...                       # saves
        SAVES.since(mark)         # the paths saved in between, oldest first

    Only the last ``keep`` entries are held, so a kernel that loads models all day does not grow
    without end; a mark older than that reads the entries still held."""

    def __init__(self, keep: int = 10_000):
        self._entries: collections.deque = collections.deque(maxlen=keep)
        self._count = 0

    def record(self, entry) -> None:
        """Add one entry (a saved path, or a (kind, name or path) load)."""
        self._entries.append(entry)
        self._count += 1

    def mark(self) -> int:
        """A mark for `since`: the number of entries recorded so far."""
        return self._count

    def since(self, mark: int = 0) -> list:
        """The entries recorded after ``mark`` (0: all still held), oldest first."""
        n = min(self._count - mark, len(self._entries))
        return list(self._entries)[len(self._entries) - n:] if n > 0 else []


SAVES = Ledger()
"""Every artefact this process has saved (the CLI says what was saved when interrupted)."""
LOADS = Ledger()
"""Every model, reward model, preference file and labeling set this process has loaded, as (kind, name or
path): what a run stood on (`rlhf_lab.course` checks a notebook against its profile's chain)."""

_STAGING, _OLD = "saving", "old"


class ArtefactError(ValueError):
    """A saved file or folder is missing, damaged or of the wrong kind; the message names it
    and says what to do."""


# ---- files ---------------------------------------------------------------------------------

def _sibling(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:            # Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temporary sibling, fsync, rename, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; cannot write a file there")
    tmp = _sibling(path, "tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with _interrupt_held():
            os.replace(tmp, path)
            SAVES.record(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text(path, text: str) -> Path:
    """`write_bytes` of UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, obj, indent: int | None = 2) -> Path:
    """`write_bytes` of ``obj`` as JSON (ends with a newline). NaN is refused: it is not JSON."""
    return write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def read_json(path, what: str = "file", hint: str = ""):
    """``json.loads`` of a file, with errors that name the file and say what to do."""
    path = Path(path)
    if not path.exists():
        raise ArtefactError(f"{path} is missing: the {what} is incomplete. {hint}".strip())
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtefactError(f"{path} is damaged (not valid JSON: {err}); it was cut short or edited by hand. "
                            f"{hint}".strip()) from None


# ---- folders -------------------------------------------------------------------------------

def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (and ``root``)."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _load_renameat2():
    """libc's renameat2, or None (not Linux, or a C library without it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


_renameat2 = _load_renameat2()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` (both exist) in one atomic step. False where the system
    cannot (then the caller falls back to two renames)."""
    if _renameat2 is None:
        return False
    sys.audit("rlhf_lab.utils.artefacts.exchange", str(a), str(b))   # a visible step for the kill tests
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):   # EINVAL, ENOSYS, EOPNOTSUPP: this file system or kernel cannot
        return False
    raise OSError(err, f"{os.strerror(err)}: exchanging {a} and {b}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(path: Path, kind: str, dead_only: bool = True) -> list[Path]:
    """Siblings ``.<name>.<kind>-<pid>-<id>`` of ``path`` (of processes that no longer run)."""
    out = []
    prefix = f".{path.name}.{kind}-"
    if not path.parent.is_dir():
        return out
    for entry in path.parent.iterdir():
        if entry.name.startswith(prefix):
            pid = entry.name[len(prefix):].split("-")[0]
            if not dead_only or not pid.isdigit() or not _pid_alive(int(pid)):
                out.append(entry)
    return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def recover(path) -> Path:
    """Put back an artefact whose save was killed between its two renames (only where the atomic
    exchange is not available): ``path`` is missing and an old copy lies beside it. Then delete
    what killed saves left behind. Returns ``path``."""
    path = Path(path)
    if not path.exists():
        olds = sorted(_leftovers(path, _OLD, dead_only=False), key=lambda p: p.stat().st_mtime)
        if olds:
            os.rename(olds[-1], path)
            _fsync_dir(path.parent)
    for left in _leftovers(path, _STAGING) + _leftovers(path, _OLD):
        _remove(left)
    return path


@contextlib.contextmanager
def atomic_dir(path):
    """Write a folder atomically::

        with atomic_dir(out) as tmp:      # an empty hidden sibling of `out`
            model.save_pretrained(tmp)
        # here `out` is the new folder, complete and fsynced; before, it was the old one

    If the body raises (or the process dies), ``out`` is untouched and the staging folder is
    removed (by the next save, after a kill).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} is a file, not a folder; choose another output folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    staging = _sibling(path, _STAGING)
    staging.mkdir()
    try:
        yield staging
        fsync_tree(staging)
        with _interrupt_held():
            if not path.exists():
                os.rename(staging, path)
            elif exchange(staging, path):       # staging now holds the old folder
                pass
            else:
                old = _sibling(path, _OLD)
                os.rename(path, old)            # a kill here leaves `old`: `recover` puts it back
                os.rename(staging, path)
                staging = old
            SAVES.record(path)
        _fsync_dir(path.parent)
    finally:
        _remove(staging)


@contextlib.contextmanager
def _interrupt_held():
    """Hold back Ctrl-C (SIGINT) until the block is done: a swap is never half reported."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    try:
        previous = signal.signal(signal.SIGINT, lambda sig, frame: caught.append(frame))
    except (ValueError, OSError):   # no signals here (an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(signal.SIGINT, caught[0])
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


# ---- checks before any work --------------------------------------------------------------

def check_writable(path, folder: bool = True, what: str = "output") -> Path:
    """Fail now, before any compute, if ``path`` cannot be written: it lies under a regular file,
    it is a file where a folder is wanted (or the reverse), or its nearest existing folder refuses
    a new file. Creates nothing that stays. Returns ``path``."""
    path = Path(path).expanduser()
    if path.exists():
        if folder and not path.is_dir():
            raise ArtefactError(f"{what} {path} is a file, not a folder; choose another --out")
        if not folder and path.is_dir():
            raise ArtefactError(f"{what} {path} is a folder, not a file; choose another path")
    probe_in = path.parent
    while not probe_in.exists():
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise ArtefactError(f"{what} {path} cannot be created: {probe_in} is a file, not a folder")
    probe = probe_in / f".rlhf-lab-write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        raise ArtefactError(f"{what} {path} cannot be written ({probe_in}: {err.strerror or err}); "
                            f"choose a folder you can write to, e.g. under runs/") from None
    return path
