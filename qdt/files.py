"""Atomic file writes, and output folders that are never shared or taken from their owner.

**Atomic writes.** A reader, or a crash, sees a file before or after a write, never half of one.
Every writer in qdt that replaces a file (instances, run configs and summaries, checkpoints, the
sweep's ``results.csv`` and manifest, IBM job records, calibrations) goes through
:func:`atomic_path`: the content goes to a temporary file in the same folder (so the rename stays
on one filesystem), is fsynced, then renamed over the target with :func:`os.replace`; on any
failure the temporary file is removed and the target is left as it was. With ``sync_folder``
the folder is fsynced after the rename too, so that the rename itself survives a power cut.
:func:`create_bytes_atomic` writes the same way but never over a file: the finished temporary is
hard-linked to the target, which fails if the target exists (``qdt noise snapshot -o``; two
writers of one name cannot both succeed).

The temporary file is ``.<name>.<random>.tmp`` next to the target (``.checkpoint.pt.x1y2.tmp``),
created by :func:`tempfile.mkstemp`: readable by its owner only (mode 0600), a mode the target
keeps after the rename. A file-system error of the write (a folder where the file should go, a
read-only disk, no space) names the target, never the temporary file.

**Output folders** (``qdt train --out``, sweeps, benches, the demo) follow two rules, kept here so
that ``rl/``, ``experiments/`` and ``cli/`` apply them alike:

* *Nothing the user owns is overwritten.* :func:`check_output_path` refuses, before any work, a
  path that is a file, lies in ``/proc`` or ``/sys``, or sits on a read-only or unwritable file
  system. :func:`check_output_folder` then wants the folder new or empty. A command's
  :class:`FolderRule` may name the files it writes itself (``allowed``) or a test that makes the
  whole folder its own (``accept``: a sweep folder holds ``sweep.json``; a bench's folder holds the
  owner file ``.qdt-owner`` that :func:`mark_owner` wrote, so that a user's own ``table3.md`` is not
  taken for a bench's, see :func:`owned_by`). Anything else is refused, naming the first few files
  found.
* *One writer per folder.* :func:`hold_folder` keeps the folder's lock file ``.qdt.lock`` locked
  with :func:`fcntl.flock` while the process writes the folder. A second writer is refused (or,
  with ``wait``, waits) and told the holder's pid and host, which the holder writes into the
  file. The kernel drops a flock when its process dies, however it dies, so a stale lock needs no
  timeout and no pid probing: a lock that can be taken is free. A holder that ends normally
  empties and removes the file; one that takes a free lock still holding a record knows that its
  writer died without releasing it, and says on stderr that it takes the lock over. The lock is
  re-entrant within a thread (a sweep cell's worker holds its folder, then
  :func:`qdt.rl.train.train` takes the same lock), and a folder the holder created is removed again
  if it is left empty. flock is advisory and local to one kernel (on NFS, Linux maps it to a lock
  on the server); where there is no flock (Windows) folders are checked but not locked.

:func:`claim_output_folder` combines the two: path checks, the lock, then the contents check under
the lock, so that two commands started at once cannot both find the folder empty.

Standard library only (and :mod:`qdt.errors`, which is too), so every layer can use it.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qdt.errors import QdtInputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; hold_folder then locks nothing
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".qdt.lock"  # the lock file hold_folder keeps in every folder a qdt process writes
OWNER_FILE = ".qdt-owner"  # names the qdt command whose output folder this is (mark_owner)
SHOWN_NAMES = 3  # files named in a refusal before "and N more"
PSEUDO_FILE_SYSTEMS = ("/proc", "/sys")  # kernel views of the system, never a place for output
NEW_OR_EMPTY = "a new or empty folder"
MOVE_FILES_AWAY = "choose a new folder, or move those files away"
IN_USE_FIX = "wait for that process to finish, or stop it; a lock whose process is gone is taken over"
# errno of os.link on a file system without hard links (FAT, some network shares)
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}

Notice = Callable[[str], None]


# ---- atomic writes ---------------------------------------------------------------------------
@contextmanager
def atomic_path(path: str | os.PathLike[str], *, sync_folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on a clean exit it is fsynced and renamed to ``path``.

    For writers that want a path rather than bytes (``torch.save``). The parent folder is
    created if missing. On an exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    with _naming_target(target), _temporary_next_to(target) as tmp:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    if sync_folder:
        _fsync_folder(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, sync_folder: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, sync_folder=sync_folder) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, sync_folder: bool = False) -> None:
    """Replace ``path`` with ``text`` as UTF-8, atomically; newlines are written as given (no
    translation), so a CSV's ``\\r\\n`` row ends stay as the csv module wrote them."""
    atomic_write_bytes(path, text.encode("utf-8"), sync_folder=sync_folder)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON (2-space indent, final newline), atomically.

    NaN and infinities are refused (:class:`ValueError`, nothing written): they are not JSON.
    """
    atomic_write_text(path, _json_text(data))


def create_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path``, which must not exist, atomically; :class:`FileExistsError` if it
    does, also when another process creates it meanwhile (the existing file is left as it is)."""
    target = Path(path)
    with _naming_target(target), _temporary_next_to(target) as tmp:
        tmp.write_bytes(data)
        _fsync_file(tmp)
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            # No hard links here: claim the name (O_EXCL), then rename the content over the claim.
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.replace(tmp, target)


def create_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """:func:`create_bytes_atomic` of ``data`` as JSON, formatted as :func:`write_json_atomic` does."""
    create_bytes_atomic(path, _json_text(data).encode("utf-8"))


def create_new_json(path: str | os.PathLike[str], data: Any, field: str) -> None:
    """:func:`create_json_atomic` for a command's output file: one that exists already, also one
    another process created meanwhile, is refused as a :class:`~qdt.errors.QdtInputError` naming
    ``field`` and the path, and left as it is."""
    try:
        create_json_atomic(path, data)
    except FileExistsError:
        raise QdtInputError(
            field, "a new file", f"{path} (it exists now)", "choose another name, or remove it first"
        ) from None


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


@contextmanager
def _naming_target(target: Path) -> Iterator[None]:
    """File-system errors of the write name ``target``, never the temporary file next to it
    (``-o /tmp`` says ``/tmp: Is a directory``, not ``/.tmp.x1y2.tmp``)."""
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    try:
        yield
    except OSError as error:
        if error.errno is None or error.filename == str(target):
            raise
        raise OSError(error.errno, error.strerror or os.strerror(error.errno), str(target)) from error


@contextmanager
def _temporary_next_to(target: Path) -> Iterator[Path]:
    """A new temporary file in ``target``'s folder (created if missing); removed at the end
    unless the block renamed it away."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ---- output paths: checked before any work ---------------------------------------------------
def list_names(names: Sequence[str], shown: int = SHOWN_NAMES) -> str:
    """``a, b, c and 4 more``: the first ``shown`` names, then how many others there are."""
    head = ", ".join(names[:shown])
    rest = len(names) - shown
    return head if rest <= 0 else f"{head} and {rest} more"


def check_output_path(path: str | os.PathLike[str], field: str, *, kind: str = "folder") -> Path:
    """Refuse an output path qdt could not write, before any work; returns it as a Path.

    ``kind`` is ``"folder"`` (the path may exist as a folder) or ``"file"`` (it must not exist at
    all). Refused, as a :class:`~qdt.errors.QdtInputError` naming ``field``: a path inside
    ``/proc`` or ``/sys``; a folder path that is a file, or a file path that exists; a path below
    a file; a path on a read-only file system or in a folder qdt may not write. The error's
    ``got`` says what is wrong in a few words; its fix names the path (``got`` is cut short).
    """
    target = Path(path)
    real = os.path.realpath(target)
    for root in PSEUDO_FILE_SYSTEMS:
        if real == root or real.startswith(root + os.sep):
            raise QdtInputError(
                field,
                f"a {kind} on a disk",
                f"a path inside {root}",
                f"{path} is in a view the kernel gives of itself; choose a path on a disk, e.g. runs/NAME",
            )
    if kind == "folder" and target.exists() and not target.is_dir():
        raise QdtInputError(field, NEW_OR_EMPTY, "an existing file", f"{path} is a file; give a folder path")
    if kind == "file" and (target.exists() or target.is_symlink()):
        what = "an existing folder" if target.is_dir() else "an existing file"
        raise QdtInputError(
            field, "a new file", what, f"{path} exists; choose another name, or remove it first"
        )
    existing = target if kind == "folder" and target.is_dir() else _nearest_existing(target.parent)
    if not existing.is_dir():
        raise QdtInputError(
            field,
            "a path whose parents are folders",
            "a path below a file",
            f"{existing} is a file: fix {path}",
        )
    if _read_only(existing):
        raise QdtInputError(
            field,
            "a path on a writable file system",
            "a read-only file system",
            f"{existing} is read-only, so {path} cannot be written; write to a folder on a writable disk",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise QdtInputError(
            field,
            "a path qdt may write",
            "no permission to write",
            f"{existing} does not let qdt write {path}; check the permissions, or choose another path",
        )
    return target


@dataclass(frozen=True)
class FolderRule:
    """What an output folder may hold already; by default nothing (a new or empty folder)."""

    expected: str = NEW_OR_EMPTY  # what the refusal says was expected
    allowed: frozenset[str] = frozenset()  # names the command writes itself (replaced by a rerun)
    accept: Callable[[Path], bool] | None = None  # True: the folder is the command's own, as it is
    fix: str = MOVE_FILES_AWAY  # the end of the refusal, after the files found


NEW_FOLDER = FolderRule()


def check_output_folder(folder: str | os.PathLike[str], field: str, rule: FolderRule = NEW_FOLDER) -> Path:
    """:func:`check_output_path`, then refuse a folder holding anything ``rule`` does not allow;
    nothing is written. The refusal names the first few files found and ends with ``rule.fix``."""
    path = check_output_path(folder, field)
    if rule.accept is not None and path.is_dir() and rule.accept(path):
        return path
    found = unexpected_entries(path, rule.allowed)
    if found:
        got = "a folder holding other files"
        raise QdtInputError(field, rule.expected, got, f"{path} holds {list_names(found)}; {rule.fix}")
    return path


def unexpected_entries(folder: Path, allowed: frozenset[str] = frozenset()) -> list[str]:
    """The names in ``folder`` other than ``allowed`` and the lock file, sorted; [] if no folder."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(name for name in names if name != LOCK_FILE and name not in allowed)


def mark_owner(folder: str | os.PathLike[str], owner: str) -> None:
    """Write ``folder``'s owner file, naming the command (``qdt bench paper``) that writes it."""
    atomic_write_text(Path(folder) / OWNER_FILE, owner + "\n")


def owned_by(folder: Path, owner: str, allowed: frozenset[str] = frozenset()) -> bool:
    """True when ``folder``'s owner file names ``owner`` and the folder holds nothing else but
    ``allowed`` names: files named like a command's outputs without the owner file are the user's."""
    try:
        marked = (folder / OWNER_FILE).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return False
    return marked == owner and not unexpected_entries(folder, allowed | {OWNER_FILE})


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): the write itself will tell
        return False


# ---- one writer per folder -------------------------------------------------------------------
_held: dict[str, int] = {}  # real path of each folder this process holds -> the holding thread
_held_guard = threading.Lock()


@contextmanager
def hold_folder(
    folder: str | os.PathLike[str], field: str, *, wait: bool = False, notice: Notice | None = None
) -> Iterator[Path]:
    """Hold ``folder``'s lock for the block (the folder is created if missing).

    Another process holding it: refused with a :class:`~qdt.errors.QdtInputError` naming
    ``field`` and the holder's pid and host, or with ``wait`` waited for. A lock left by a process
    that is gone is taken over, with a line to ``notice`` (default: stderr). Within one thread the
    lock is re-entrant. At the end the lock file is removed, and so is the folder if this call
    created it and it is empty (a command refused before writing leaves nothing behind).
    """
    path = Path(folder)
    created = _make_folder(path)
    key = os.path.realpath(path)
    me = threading.get_ident()
    with _held_guard:
        reentrant = _held.get(key) == me
    if reentrant:
        yield path
        return
    if fcntl is None:  # pragma: no cover - see the module docstring
        yield path
        return
    try:
        descriptor = _acquire(path, field, wait, notice or _to_stderr)
    except BaseException:
        _remove_if_empty(created)
        raise
    with _held_guard:
        _held[key] = me
    try:
        yield path
    finally:
        with _held_guard:
            _held.pop(key, None)
        _release(path / LOCK_FILE, descriptor)
        _remove_if_empty(created)


@contextmanager
def claim_output_folder(
    folder: str | os.PathLike[str], field: str, rule: FolderRule = NEW_FOLDER, *, notice: Notice | None = None
) -> Iterator[Path]:
    """Check the path, hold the folder's lock, check its contents under the lock, then yield.

    The contents rule is :func:`check_output_folder`'s; the lock is :func:`hold_folder`'s.
    """
    check_output_path(folder, field)
    with hold_folder(folder, field, notice=notice) as path:
        check_output_folder(path, field, rule)
        yield path


def _make_folder(path: Path) -> list[Path]:
    """Create ``path`` and missing parents; returns the folders created, deepest first."""
    missing = []
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_if_empty(created: list[Path]) -> None:
    """Remove the folders :func:`_make_folder` created (deepest first) while they are empty."""
    for made in created:
        try:
            os.rmdir(made)
        except OSError:
            return


def _acquire(path: Path, field: str, wait: bool, notice: Notice) -> int:
    lock_path = path / LOCK_FILE
    mode = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
    while True:
        try:
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except FileNotFoundError:  # a holder that created the folder removed it while we looked
            path.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(descriptor, mode)
        except BlockingIOError:
            holder = _describe(_parse_record(_read(descriptor)))
            os.close(descriptor)
            raise QdtInputError(
                field,
                "a folder no other qdt process is writing",
                "a folder in use",
                f"{path} is in use by {holder}; {IN_USE_FIX}",
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        if _names(descriptor, lock_path):
            break
        os.close(descriptor)  # the holder removed this file as it let go: lock the new one
    left = _read(descriptor)
    if left.strip():
        notice(
            f"qdt: notice: {path}: taking over the lock of {_describe(_parse_record(left))}, "
            "which ended without releasing it"
        )
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, (json.dumps(record) + "\n").encode("utf-8"), 0)
    return descriptor


def _release(lock_path: Path, descriptor: int) -> None:
    try:
        os.ftruncate(descriptor, 0)  # an empty file, should the unlink fail, reads as released
        if _names(descriptor, lock_path):
            os.unlink(lock_path)
    except OSError:
        pass
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def _names(descriptor: int, path: Path) -> bool:
    """Whether ``path`` still names the open file (and not a newer lock file, or nothing)."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(descriptor)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _read(descriptor: int) -> str:
    return os.pread(descriptor, 4096, 0).decode("utf-8", errors="replace")


def _parse_record(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return {"text": text.strip()[:80]}
    return record if isinstance(record, dict) else {"text": text.strip()[:80]}


def _describe(record: dict[str, Any] | None) -> str:
    if record is None:
        return "another process"  # it has the lock but has not written its record yet
    if "pid" not in record:
        return f"an unknown process (lock file says {record.get('text', record)!r})"
    text = f"pid {record['pid']}"
    if record.get("host"):
        text += f" on host {record['host']}"
    if record.get("started"):
        text += f", since {record['started']}"
    return text


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
