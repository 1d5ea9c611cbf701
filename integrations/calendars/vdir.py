"""A calendar kept as a folder of ``.ics`` files (the vdir layout of vdirsyncer/khal).

Each file holds one calendar object: a single event, or a series master with
its RECURRENCE-ID overrides. Files whose name starts with a dot, and files not
ending in ``.ics``, are ignored (our own temporary files start with a dot).

- **Etag**: the SHA-256 of a file's bytes; all VEVENTs of a file share it.
- **Cursor**: per file ``(mtime_ns, size, inode, etag prefix, refs)``, packed
  into an opaque string. A steady read only ``stat``\\ s the folder; a file is
  read only when its stat changed, and reported only when its bytes changed.
  The refs let a later read report the events of a vanished file as deleted.
- **Unreadable files** come back as :class:`~feedback_agendas.agendas.model.Unreadable` with a
  logged warning (no content in the log) and are never rewritten.
- **Writes** are compare-and-swap on the file's etag, edit the file's bytes so
  that only the DESCRIPTION and ``X-FEEDBACK-AGENDAS-HASH`` lines of the
  targeted VEVENT change (:func:`~integrations.calendars.ics.rewrite_descriptions`),
  and replace the file atomically (temp file in the same folder, fsync,
  ``os.replace``). An event that cannot be edited with certainty (bytes that
  are not UTF-8, a VEVENT we cannot locate in the text...) reads as not
  editable and is never written.

Request kinds counted in ``requests``: ``list`` (one per ``read_changes``),
``read`` (one per file read), ``get`` and ``write`` (one per file written).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from feedback_agendas.agendas.errors import (
    CursorExpired,
    NotFound,
    PreconditionFailed,
    ProviderError,
)
from feedback_agendas.agendas.model import (
    ChangeSet,
    DescriptionWrite,
    EventRef,
    Meeting,
    Unreadable,
    WriteOutcome,
)
from feedback_agendas.integrations.calendars.base import BuildContext, CalendarConfig, ProviderSpec
from feedback_agendas.integrations.calendars.ics import (
    IcsError,
    etag_of,
    meetings_from_calendar,
    parse_calendar,
    rewrite_descriptions,
)
from feedback_agendas.integrations.config_types import RelativePath, TimeZoneName, folder_problem

log = logging.getLogger(__name__)

CURSOR_PREFIX = "vdir1:"
ETAG_PREFIX_LEN = 16  # enough to tell two versions of one file apart


@dataclass(frozen=True, slots=True)
class _FileState:
    """What a cursor remembers of one file."""

    mtime_ns: int
    size: int
    inode: int
    etag: str  # prefix of the full etag
    refs: tuple[tuple[str, str | None], ...]  # (uid, recurrence_id) of its events

    def same_stat(self, st: os.stat_result) -> bool:
        return (self.mtime_ns, self.size, self.inode) == (st.st_mtime_ns, st.st_size, st.st_ino)


class VdirProvider:
    """A folder of ``.ics`` files as a :class:`~integrations.calendars.base.CalendarProvider`."""

    def __init__(self, name: str, path: Path, owner: str, default_timezone: str = "UTC") -> None:
        self.name = name
        self.path = Path(path)
        self.owner = owner.lower()
        self.default_timezone = default_timezone
        self.requests: Counter[str] = Counter()
        # file name -> (stat key, UIDs in it): finds the file of an event to get or write.
        self._index: dict[str, tuple[tuple[int, int, int], frozenset[str]]] = {}

    # -- reading ----------------------------------------------------------------

    def read_changes(self, cursor: str | None) -> ChangeSet:
        """Report files changed since ``cursor`` (all files when ``cursor`` is None).

        Raises CursorExpired for a cursor this folder did not issue and
        NotFound when the folder is missing.
        """
        self.requests["list"] += 1
        previous = None if cursor is None else self._decode_cursor(cursor)
        listing = self._list_files()
        state: dict[str, _FileState] = {}
        changed: list[tuple[str, os.stat_result]] = []
        for file_name, st in listing.items():
            old = previous.get(file_name) if previous is not None else None
            if old is not None and old.same_stat(st):
                state[file_name] = old
            else:
                changed.append((file_name, st))

        owner_of: dict[tuple[str, str | None], str] = {
            ref: file_name for file_name, s in state.items() for ref in s.refs
        }
        meetings: list[Meeting] = []
        unreadable: list[Unreadable] = []
        deleted: set[EventRef] = set()
        for file_name, st in sorted(changed):
            old = previous.get(file_name) if previous is not None else None
            try:
                data = self._read(file_name)
            except FileNotFoundError:
                continue  # vanished since the listing: reported as deleted below
            etag = etag_of(data)
            if old is not None and old.etag == etag[:ETAG_PREFIX_LEN]:
                # Touched but not changed (same bytes): remember the new stat only.
                state[file_name] = _FileState(
                    st.st_mtime_ns, st.st_size, st.st_ino, old.etag, old.refs
                )
                continue
            old_refs = old.refs if old is not None else ()
            try:
                found = self._parse(data, etag)
            except IcsError as exc:
                unreadable.extend(self._unreadable(file_name, old_refs, str(exc)))
                state[file_name] = _FileState(
                    st.st_mtime_ns, st.st_size, st.st_ino, etag[:ETAG_PREFIX_LEN], old_refs
                )
                continue
            clashes = {_key(m.ref) for m in found if _key(m.ref) in owner_of}
            if clashes:
                # Neither copy is written: which one the user means is not ours to guess.
                # Both files are read again every cycle while the clash lasts, so the
                # one that stays is synced as soon as the other goes.
                others = sorted({owner_of[key] for key in clashes})
                for other in others:
                    keys = {key for key in clashes if owner_of[key] == other}
                    meetings = [m for m in meetings if _key(m.ref) not in keys]
                    unreadable.extend(
                        Unreadable(self._ref(key), f"{other}: UID {key[0]} is also in {file_name}")
                        for key in sorted(keys, key=lambda k: (k[0], k[1] or ""))
                    )
                    if other in state:
                        kept = state[other]
                        state[other] = _FileState(-1, kept.size, kept.inode, "", kept.refs)
                uid = min(key[0] for key in clashes)
                reason = f"UID {uid} is also in {', '.join(others)}"
                unreadable.extend(self._unreadable(file_name, old_refs, reason))
                refs = tuple(_key(m.ref) for m in found)
                state[file_name] = _FileState(-1, st.st_size, st.st_ino, "", refs)
                continue
            refs = tuple(_key(m.ref) for m in found)
            for ref in refs:
                owner_of[ref] = file_name
            meetings.extend(found)
            deleted.update(self._ref(r) for r in old_refs if r not in refs)
            state[file_name] = _FileState(
                st.st_mtime_ns, st.st_size, st.st_ino, etag[:ETAG_PREFIX_LEN], refs
            )
        if previous is not None:
            for file_name, old in previous.items():
                if file_name not in state:
                    deleted.update(self._ref(r) for r in old.refs)
        # A UID that moved to another file is not gone.
        present = {m.ref for m in meetings} | {u.ref for u in unreadable}
        self._index = {
            file_name: ((s.mtime_ns, s.size, s.inode), frozenset(uid for uid, _ in s.refs))
            for file_name, s in state.items()
        }
        return ChangeSet(
            meetings=tuple(meetings),
            deleted=tuple(sorted(deleted - present, key=EventRef.sort_key)),
            cursor=self._encode_cursor(state),
            full=previous is None,
            unreadable=tuple(unreadable),
        )

    def get(self, ref: EventRef) -> Meeting | None:
        """Read the event ``ref`` names again from its file; None when it is gone.

        Raises IcsError (a ProviderError) when its file can no longer be parsed.
        """
        self.requests["get"] += 1
        for refresh in (False, True):
            file_name = self._file_for(ref.event_id, refresh=refresh)
            if file_name is None:
                return None
            try:
                data = self._read(file_name)
            except FileNotFoundError:
                continue
            found = self._parse(data, etag_of(data))
            if any(m.ref.event_id == ref.event_id for m in found):
                return next((m for m in found if m.ref == ref), None)
        return None

    # -- writing ----------------------------------------------------------------

    def write(self, writes: Sequence[DescriptionWrite]) -> list[WriteOutcome]:
        """Write descriptions, one atomic file replacement per file (see module docs)."""
        outcomes: dict[int, WriteOutcome] = {}
        by_file: dict[str, list[tuple[int, DescriptionWrite]]] = defaultdict(list)
        for index, w in enumerate(writes):
            file_name = self._file_for(w.ref.event_id)
            holders = self._files_holding(w.ref.event_id)
            if file_name is None:
                outcomes[index] = WriteOutcome(w.ref, error=NotFound(f"no event {w.ref.event_id}"))
            elif len(holders) > 1:
                clash = IcsError(f"UID {w.ref.event_id} is in {', '.join(holders)}")
                outcomes[index] = WriteOutcome(w.ref, error=clash)
            else:
                by_file[file_name].append((index, w))
        for file_name, items in by_file.items():
            try:
                outcomes.update(self._write_file(file_name, items))
            except ProviderError as exc:
                outcomes.update({i: WriteOutcome(w.ref, error=exc) for i, w in items})
            except OSError as exc:
                why = exc.strerror or type(exc).__name__
                failed = ProviderError(f"cannot write {self.path / file_name}: {why}")
                failed.__cause__ = exc  # its kind (permission, disk full) comes from the cause
                outcomes.update({i: WriteOutcome(w.ref, error=failed) for i, w in items})
        return [outcomes[i] for i in range(len(writes))]

    def close(self) -> None:
        """Nothing to release: files are opened only while read or written."""

    def _write_file(
        self, file_name: str, items: list[tuple[int, DescriptionWrite]]
    ) -> dict[int, WriteOutcome]:
        outcomes: dict[int, WriteOutcome] = {}
        path = self.path / file_name
        try:
            data = self._read(file_name)
        except FileNotFoundError:
            return {
                i: WriteOutcome(w.ref, error=NotFound(f"{file_name} is gone")) for i, w in items
            }
        etag = etag_of(data)
        fresh = []
        for index, w in items:
            if w.etag != etag:
                outcomes[index] = WriteOutcome(
                    w.ref, error=PreconditionFailed(f"{file_name} changed")
                )
            else:
                fresh.append((index, w))
        if not fresh:
            return outcomes
        try:
            new_data, applied, failed = rewrite_descriptions(
                data,
                fresh,
                source=file_name,
                calendar_name=self.name,
                owner=self.owner,
                default_timezone=self.default_timezone,
            )
        except ProviderError as error:
            outcomes.update({i: WriteOutcome(w.ref, error=error) for i, w in fresh})
            return outcomes
        outcomes.update(failed)
        if new_data is None:
            return outcomes
        self.requests["write"] += 1
        if self._read(file_name) != data:
            # A user saved the file while we merged: do not overwrite their edit.
            raced = PreconditionFailed(f"{file_name} changed while writing")
            outcomes.update({i: WriteOutcome(w.ref, error=raced) for i, w in applied})
            return outcomes
        _atomic_replace(path, new_data)
        new_etag = etag_of(new_data)
        outcomes.update({i: WriteOutcome(w.ref, etag=new_etag) for i, w in applied})
        return outcomes

    # -- helpers ----------------------------------------------------------------

    def _list_files(self) -> dict[str, os.stat_result]:
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            raise NotFound(f"calendar folder {self.path} does not exist") from None
        except OSError as exc:
            raise ProviderError(f"cannot list {self.path}: {type(exc).__name__}") from exc
        listing = {}
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(".ics"):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                listing[entry.name] = st
        return listing

    def _read(self, file_name: str) -> bytes:
        self.requests["read"] += 1
        return (self.path / file_name).read_bytes()

    def _parse(self, data: bytes, etag: str) -> list[Meeting]:
        return meetings_from_calendar(
            parse_calendar(data),
            calendar_name=self.name,
            owner=self.owner,
            etag=etag,
            default_timezone=self.default_timezone,
            raw=data,
        )

    def _file_for(self, uid: str, *, refresh: bool = False) -> str | None:
        """The file that holds ``uid``.

        Known UIDs cost nothing; an unknown one refreshes the index, which
        parses only files whose stat changed since they were indexed.
        """
        known = self._index_uids().get(uid)
        if known is not None and not refresh and (self.path / known).exists():
            return known
        listing = self._list_files()
        for file_name in list(self._index):
            if file_name not in listing:
                del self._index[file_name]
        for file_name, st in listing.items():
            indexed = self._index.get(file_name)
            if indexed is not None and indexed[0] == _stat_key(st):
                continue
            try:
                data = self._read(file_name)
                uids = frozenset(m.ref.event_id for m in self._parse(data, etag_of(data)))
            except (IcsError, FileNotFoundError):
                uids = frozenset()
            self._index[file_name] = (_stat_key(st), uids)
        return self._index_uids().get(uid)

    def _files_holding(self, uid: str) -> list[str]:
        return sorted(name for name, (_, uids) in self._index.items() if uid in uids)

    def _index_uids(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for file_name in sorted(self._index, reverse=True):  # first file wins on a clash
            found.update({uid: file_name for uid in self._index[file_name][1]})
        return found

    def _unreadable(
        self, file_name: str, old_refs: tuple[tuple[str, str | None], ...], reason: str
    ) -> list[Unreadable]:
        # The engine logs and reports each one, once; the reason names the file.
        # Report the events we knew in this file, so that they are not taken as deleted.
        refs = [self._ref(r) for r in old_refs] or [EventRef(self.name, file_name)]
        return [Unreadable(ref, f"{file_name}: {reason}") for ref in refs]

    def _ref(self, key: tuple[str, str | None]) -> EventRef:
        return EventRef(self.name, key[0], key[1])

    # -- cursor -----------------------------------------------------------------

    def _folder_id(self) -> str:
        return hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:12]

    def _encode_cursor(self, state: dict[str, _FileState]) -> str:
        payload = {
            "folder": self._folder_id(),
            "files": {
                name: [s.mtime_ns, s.size, s.inode, s.etag, [list(r) for r in s.refs]]
                for name, s in sorted(state.items())
            },
        }
        packed = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 6)
        return CURSOR_PREFIX + base64.urlsafe_b64encode(packed).decode("ascii")

    def _decode_cursor(self, cursor: str) -> dict[str, _FileState]:
        if not cursor.startswith(CURSOR_PREFIX):
            raise CursorExpired("not a vdir cursor")
        try:
            raw = zlib.decompress(base64.urlsafe_b64decode(cursor[len(CURSOR_PREFIX) :]))
            payload = json.loads(raw)
            if payload["folder"] != self._folder_id():
                raise CursorExpired("cursor of another folder")
            return {
                str(name): _FileState(
                    int(m), int(size), int(ino), str(etag), tuple((str(u), r) for u, r in refs)
                )
                for name, (m, size, ino, etag, refs) in payload["files"].items()
            }
        except CursorExpired:
            raise
        except (ValueError, KeyError, TypeError, binascii.Error, zlib.error) as exc:
            raise CursorExpired("unreadable vdir cursor") from exc


def _key(ref: EventRef) -> tuple[str, str | None]:
    return (ref.event_id, ref.recurrence_id)


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _atomic_replace(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half."""
    mode = stat.S_IMODE(path.stat().st_mode)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# -- registration -------------------------------------------------------------


class VdirCalendar(CalendarConfig):
    """A local folder of .ics files, one event (with its overrides) per file."""

    provider: Literal["vdir"]
    path: RelativePath
    timezone: TimeZoneName | None = None

    def problems_here(self) -> list[tuple[str, str]]:
        """The folder must exist, and we must read and write it."""
        problem = folder_problem(self.path)
        return [("path", problem)] if problem else []


def build_vdir(config: VdirCalendar, context: BuildContext) -> VdirProvider:
    """The provider for one ``calendars[]`` entry (floating times in ``timezone``, else UTC)."""
    return VdirProvider(
        name=config.name,
        path=config.path,
        owner=config.owner,
        default_timezone=config.timezone or "UTC",
    )


PROVIDER = ProviderSpec(name="vdir", config=VdirCalendar, build=build_vdir)
