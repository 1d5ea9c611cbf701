"""Every .ics file shipped with icalendar's own tests, read (and written) through the vdir provider.

The corpus holds the odd things real calendars contain: Outlook and Google
exports, custom VTIMEZONEs, broken lines, RDATE periods, several calendars in
one file. None of it may crash a sync: each file is a Meeting
(or several) or an Unreadable with a reason, the core's ``decide`` runs on
every Meeting, and a description written back to a readable file reads back
the same while the file keeps parsing.

Each corpus file gets its own vdir folder: many of them reuse one UID (they
are variants of one test), which in a single folder is a clash that the
provider rightly reports as unreadable. A file holding a bare component (no
VCALENDAR around it, as in icalendar's ``events/``) is not a vdir file; it is
wrapped in a VCALENDAR so that its content is exercised too. The last test
reads the raw corpus in one folder, clashes and bare components included.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest

from feedback_agendas.agendas.decide import decide
from feedback_agendas.agendas.model import ChangeSet, DescriptionWrite
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.ics import parse_calendar
from feedback_agendas.integrations.calendars.vdir import VdirProvider
from tests.support.rules import example_com_rules, platform_team

CORPUS = Path(icalendar.__file__).parent / "tests"
OWNER = "mona@example.com"
RULES = example_com_rules(
    platform_team(OWNER, "alice@example.com", "bob@example.com", timezone="Europe/Stockholm")
)


@dataclass
class CorpusFile:
    path: Path
    provider: VdirProvider
    changes: ChangeSet


def corpus_sources() -> list[Path]:
    return sorted(CORPUS.rglob("*.ics"))


def flat_name(source: Path) -> str:
    return "-".join(source.relative_to(CORPUS).parts)  # events/x.ics and calendars/x.ics differ


def as_calendar_object(data: bytes) -> bytes:
    """Wrap a bare component in a VCALENDAR; leave anything else byte for byte."""
    if data.lstrip(b"\xef\xbb\xbf \r\n").upper().startswith(b"BEGIN:VCALENDAR"):
        return data
    if not data.lstrip().upper().startswith(b"BEGIN:"):
        return data
    head = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//corpus//EN\r\n"
    return head + data.rstrip(b"\r\n") + b"\r\nEND:VCALENDAR\r\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[CorpusFile]:
    root = tmp_path_factory.mktemp("corpus")
    files = []
    for source in corpus_sources():
        folder = root / flat_name(source).removesuffix(".ics")
        folder.mkdir()
        path = folder / flat_name(source)
        path.write_bytes(as_calendar_object(source.read_bytes()))
        provider = VdirProvider("corpus", folder, OWNER, default_timezone="Europe/Stockholm")
        files.append(CorpusFile(path, provider, provider.read_changes(None)))
    return files


def test_every_corpus_file_reads_as_meetings_or_unreadable(corpus: list[CorpusFile]) -> None:
    meetings = [m for f in corpus for m in f.changes.meetings]
    unreadable = [f for f in corpus if f.changes.unreadable]
    print(
        f"\nicalendar corpus: {len(corpus)} files, {len(meetings)} meetings, "
        f"{len(unreadable)} unreadable files"
    )
    assert len(corpus) >= 150
    assert len(meetings) >= 80  # 86 with icalendar 7.3.0
    for f in corpus:
        # a file is either read or reported, never silently dropped
        assert bool(f.changes.meetings) != bool(f.changes.unreadable), f.path.name
        assert all(u.reason for u in f.changes.unreadable)
    for meeting in meetings:
        assert meeting.start.tzinfo is not None and meeting.end.tzinfo is not None
        assert meeting.owner == OWNER
        assert all(a.email == a.email.lower() for a in meeting.attendees)


def test_known_broken_files_are_unreadable(corpus: list[CorpusFile]) -> None:
    by_name = {f.path.name: f for f in corpus}
    for name in (
        "calendars-broken_dtstart.ics",
        "calendars-issue_1081_invalid_rrule_freq.ics",
        "calendars-issue_104_broken_calendar.ics",
        "calendars-empty.ics",
    ):
        assert by_name[name].changes.unreadable, name


def test_the_core_decides_on_every_corpus_meeting(corpus: list[CorpusFile]) -> None:
    renderer = AgendaRenderer()
    decided = 0
    for meeting in (m for f in corpus for m in f.changes.meetings):
        for now in (datetime(2026, 12, 1, tzinfo=UTC), meeting.start - timedelta(days=1)):
            decision = decide(meeting, RULES, now, renderer)
            assert decision.meeting == meeting
            decided += 1
    assert decided >= 160


def test_a_description_written_to_any_readable_corpus_file_reads_back(
    corpus: list[CorpusFile],
) -> None:
    written = 0
    for f in corpus:
        writes = [
            DescriptionWrite(
                m.ref, m.etag, f"{m.description}\n\n-- agenda --\nÅsa: do well; ok", "hash-1"
            )
            for m in f.changes.meetings
            if m.editable
        ]
        outcomes = f.provider.write(writes)
        for write, outcome in zip(writes, outcomes, strict=True):
            assert outcome.ok, (f.path.name, write.ref, outcome.error)
            fresh = f.provider.get(write.ref)
            assert fresh is not None, write.ref
            assert fresh.description == write.description.replace("\r\n", "\n"), write.ref
            assert fresh.stored_hash == "hash-1"
            written += 1
        if writes:
            parse_calendar(f.path.read_bytes())  # what we wrote still parses
            after = f.provider.read_changes(None)
            assert len(after.meetings) == len(f.changes.meetings)
    print(f"\nicalendar corpus: wrote {written} descriptions")
    assert written >= 80


def test_the_whole_corpus_in_one_folder_reads_without_raising(tmp_path: Path) -> None:
    for source in corpus_sources():
        shutil.copyfile(source, tmp_path / flat_name(source))
    vdir = VdirProvider("corpus", tmp_path, OWNER)
    changes = vdir.read_changes(None)
    clashes = [u for u in changes.unreadable if "is also in" in u.reason]
    assert clashes  # variants of one test share a UID: reported, not merged
    uids = [m.ref for m in changes.meetings]
    assert len(uids) == len(set(uids))
    again = vdir.read_changes(changes.cursor)
    assert again.deleted == ()
    # A clash is reported again every cycle while it lasts (both files are read
    # again); nothing else is.
    assert {u.reason for u in again.unreadable} == {
        u.reason for u in changes.unreadable if "is also in" in u.reason
    }
    assert {m.ref for m in again.meetings} <= set(uids)
