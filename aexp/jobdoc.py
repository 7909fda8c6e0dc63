"""Safe reads and writes of the job document (`<job>/signac_job_document.json`).

signac writes the whole document on every update (read, modify, atomic replace) without an
inter-process lock, so two processes updating different keys lose each other's writes. Every
aexp write goes through `update_doc` under a per-job lock (`aexp.joblock.job_lock`); reads go
through `read_doc`, which parses the file once per change (cached by inode, mtime and size), so the
workflow's conditions cost one parse per job however many conditions read it; `peek_doc` is the
same read without keeping the parse (for one pass over many jobs, like `status`). An attempt
reads its job's document once (`hold_doc`) and writes its end on top of that read
(`update_doc(..., base=...)`) when no other write came between.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from aexp.errors import BindingError
from aexp.joblock import current_pid, job_lock
from aexp.journal.format import encode

# The last parse of each document and the (inode, mtime, size) it was parsed at, by path. Two
# dicts rather than one of (key, doc) pairs: fewer objects for the garbage collector to walk.
_cache_keys: dict[str, tuple[int, int, int]] = {}
_cache_docs: dict[str, dict[str, Any]] = {}
# A value derived from the cached document of a path (`derived`), dropped when the cached
# document is replaced: the binding validated once per version, not once per question.
_cache_derived: dict[str, Any] = {}


@dataclass(frozen=True)
class JobDir:
    """A signac job known by its id and directory only: all that this module needs of a job.

    Lets a process that only reads and writes job documents (`aexp sync-offline`) work without
    importing signac; a `signac.job.Job` serves wherever a JobDir does.
    """

    id: str
    path: str
    FN_DOCUMENT: ClassVar[str] = "signac_job_document.json"  # signac.job.Job.FN_DOCUMENT


def now_iso() -> str:
    """The current time as ISO-8601 UTC (the format of every timestamp aexp writes)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def age_seconds(timestamp: str | None) -> float | None:
    """Seconds since an ISO-8601 timestamp written by `now_iso`, or None if absent or unreadable."""
    if not timestamp:
        return None
    try:
        then = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


def _doc_path(job: Any) -> str:
    # signac joins job paths with os.sep itself (job.path never ends in a separator); a plain
    # join is several times cheaper than os.path.join, and conditions call this constantly.
    return f"{job.path}{os.sep}{job.FN_DOCUMENT}"


def read_doc(job: Any, *, fresh: bool = False) -> dict[str, Any]:
    """The job document as a plain dict ({} if the job has none yet).

    The returned dict is shared with the cache: treat it as read-only. `fresh` bypasses the
    cache (writers use it: a file replaced twice within one timestamp tick can look unchanged).
    Raises BindingError if the file is not valid JSON.
    """
    return _read_doc(job, _doc_path(job), fresh)


_MISSING: Any = object()


def derived(job: Any, doc: dict[str, Any], make: Callable[[], Any]) -> Any:
    """`make()`, once per version of the job's document: where `doc` is the document this
    module holds for the job (what `read_doc` returned), the value is kept with it until the
    document changes; any other `doc` (a `peek_doc`, a private copy) gets `make()` each time.
    `make` must depend on `doc` alone. A `doc` parsed apart from the cache (`hold_doc`) that
    holds what the cached one holds gets the value derived from that one (one comparison of
    the two in C, where `make` is a walk in Python)."""
    path = _doc_path(job)
    cached = _cache_docs.get(path)
    if cached is not doc:
        value = _cache_derived.get(path, _MISSING)
        if value is _MISSING or cached != doc:
            return make()
        return value
    value = _cache_derived.get(path, _MISSING)
    if value is _MISSING:
        value = _cache_derived[path] = make()
    return value


def peek_doc(job: Any) -> dict[str, Any]:
    """`read_doc`, but a document parsed now is not kept in the cache.

    For one pass over many jobs (`status`): the pass does not hold every job's parsed document
    (about 4 KB each) until it ends. A cached parse that is still current is returned as is.
    """
    return _read_doc(job, _doc_path(job), False, keep=False)


def _read_doc(job: Any, path: str, fresh: bool, *, keep: bool = True) -> dict[str, Any]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    if not fresh and _cache_keys.get(path) == key:
        return _cache_docs[path]
    # One read of the size the stat gave and one decode: the same result as json.load on a
    # UTF-8 text file, at about a third of the system calls (this runs once per job in every
    # `status`).
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = _read_fd(fd, st.st_size)
    finally:
        os.close(fd)
    doc = _parse(job, path, data)
    if keep:
        _cache_keys[path] = key
        _cache_docs[path] = doc
        _cache_derived.pop(path, None)
    return doc


def _read_fd(fd: int, size: int) -> bytes:
    """The file's bytes, read with one `read` when it still has the `size` a stat just gave."""
    data = os.read(fd, size + 1)  # one byte more: a file that grew since is read on
    if len(data) > size:
        chunks = [data]
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        data = b"".join(chunks)
    return data


def _parse(job: Any, path: str, data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BindingError(
            f"job {job.id}: its document {path} is not valid JSON; restore it (or mend it by "
            "hand): aexp leaves it as it is, and the job's results and journal are untouched."
        ) from None
    if not isinstance(doc, dict):
        raise BindingError(f"job {job.id}: its document {path} is not a JSON object.")
    return doc


class HeldDoc:
    """A job document read by `hold_doc`, its file kept open until `close`: an update on top of
    it (`update_doc(job, change, base=held)`) reads the file again only if it changed since.

    The open file keeps its inode from being reused, so the document's path showing the same
    (inode, mtime, size, ctime) as when it was read means the very same, unchanged file on any
    file system, however coarse its timestamps. `doc` is the caller's own (not shared with the
    read cache); an update on top of it changes it.
    """

    __slots__ = ("_fd", "_key", "doc")

    def __init__(self, doc: dict[str, Any], fd: int | None, key: tuple[int, ...] | None) -> None:
        self.doc, self._fd, self._key = doc, fd, key

    def take(self, path: str) -> dict[str, Any] | None:
        """`doc`, if the file at `path` is still the one read (then it is given away: a second
        update reads the file); else None."""
        if self._key is None:
            return None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        if (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns) != self._key:
            return None
        self._key = None
        return self.doc

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._key = None


def hold_doc(job: Any) -> HeldDoc:
    """The job document, read afresh (one open, one read, one parse; not cached) and held open
    (HeldDoc). Raises BindingError if the file is not valid JSON."""
    path = _doc_path(job)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return HeldDoc({}, None, None)
    try:
        st = os.fstat(fd)
        doc = _parse(job, path, _read_fd(fd, st.st_size))
    except BaseException:
        os.close(fd)
        raise
    return HeldDoc(doc, fd, (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns))


def update_doc(
    job: Any,
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    *,
    base: HeldDoc | None = None,
) -> dict[str, Any]:
    """Apply `change` to a fresh copy of the document under the job lock and store the result.

    `change` receives a private copy of the current document (parsed from the file under the
    lock, so another process's last write is seen; or `base.doc`, read earlier and held open,
    when the file has not changed since: HeldDoc) and returns the top-level keys to store (or
    None to store nothing). Returns the document as stored. Keys must be valid signac document
    keys (strings without dots).
    """
    with job_lock(job):
        path = _doc_path(job)
        # Parsed afresh and not cached: the dict is this update's own to change, with no copy.
        current = base.take(path) if base is not None else None
        if current is None:
            current = _read_doc(job, path, True, keep=False)
        updates = change(current)
        if updates:
            current.update(updates)
            try:
                text = _dumps(current)
            except ValueError:  # NaN or infinity somewhere: the document stays strict JSON
                current = strict_json(current)
                text = _dumps(current)
            except TypeError as exc:
                raise TypeError(f"job {job.id}: cannot store {sorted(updates)}: {exc}") from None
            _write_atomically(path, text)
            # Remember what was written, so this process reads its own writes even where the
            # file's (inode, mtime, size) cannot tell two versions apart: inodes are reused at
            # once and many cluster file systems keep mtime to the second. The cache gets its
            # own parse: `current` goes back to the caller, who may change it.
            st = os.stat(path)
            _cache_keys[path] = (st.st_ino, st.st_mtime_ns, st.st_size)
            _cache_docs[path] = json.loads(text)
            _cache_derived.pop(path, None)
        return current


# Strict JSON: jq, browsers and other strict readers reject NaN and Infinity literals (the
# journal's encoder: `json.JSONEncoder(allow_nan=False).encode`, called without its frames).
_dumps = encode


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by "NaN", "Infinity" or "-Infinity".

    How aexp keeps job documents strict JSON (the run journal does the same for metrics).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def _write_atomically(path: str, text: str) -> None:
    # The same atomic replace signac performs, without its per-key validation: one write per
    # update, and a reader (signac's job.doc included) never sees a torn file. The text is
    # serialised before the temporary file is opened, so a failure leaves nothing behind.
    # Plain descriptors: no text layer, no buffer, no isatty probe of a new file.
    tmp = f"{path}.{current_pid()}.tmp"
    data = text.encode("utf-8")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data)
            while view:  # a regular file takes it whole; a short write continues
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
