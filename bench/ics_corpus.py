"""Corpus report: write a description into every event of real .ics files, count what changed.

Every ``.ics`` file under the given folders (default: ``tests/data/ics-corpus``,
which ships khal's test files, plus the test files of the installed
``icalendar``) goes into a vdir folder of its own (variants of one test share
a UID). A file holding a bare component is wrapped in a VCALENDAR first; the
wrapped bytes are then its original. The vdir provider reads it, and every
event in it gets a new description and hash through ``VdirProvider.write``.

It prints, as JSON: files read, files written, files skipped by reason (the
reason codes of ``ics_lines.Blocker``, or ``unreadable:`` and why), events
written and skipped by reason, and the files changed outside the DESCRIPTION
and ``X-FEEDBACK-AGENDAS-HASH`` lines of the events written (the goal is 0;
checked by :mod:`tests.fidelity`, not by the code under test).

    .venv/bin/python -m bench.ics_corpus [FOLDER ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import icalendar

from feedback_agendas.agendas.model import DescriptionWrite
from feedback_agendas.integrations.calendars.ics import UnsafeToWrite
from feedback_agendas.integrations.calendars.vdir import VdirProvider
from tests.fidelity import without_written_lines

SHIPPED = Path(__file__).resolve().parent.parent / "tests" / "data" / "ics-corpus"
ICALENDAR_TESTS = Path(icalendar.__file__).parent / "tests"
OWNER = "mona@example.com"
TEXT = "Dial-in: 555-0101\n\n-- agenda --\nÅsa: this you do well; name it, and its impact"


@dataclass
class CorpusReport:
    """What a corpus run did, in counts (file names only where something went wrong)."""

    files_read: int = 0
    files_written: int = 0
    files_skipped: Counter[str] = field(default_factory=Counter)
    events_written: int = 0
    events_skipped: Counter[str] = field(default_factory=Counter)
    changed_outside_description: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "files_read": self.files_read,
            "files_written": self.files_written,
            "files_skipped": dict(sorted(self.files_skipped.items())),
            "events_written": self.events_written,
            "events_skipped": dict(sorted(self.events_skipped.items())),
            "files_changed_outside_description": len(self.changed_outside_description),
            "changed": sorted(self.changed_outside_description),
        }


def corpus_files(folders: Iterable[Path]) -> list[tuple[str, Path]]:
    """``(label, path)`` of every .ics file under ``folders``, in a stable order."""
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*.ics")):
            found.append((f"{folder.name}/{path.relative_to(folder)}", path))
    return found


def as_calendar_object(data: bytes) -> bytes:
    """Wrap a bare component in a VCALENDAR; leave anything else byte for byte."""
    head = data.lstrip(b"\xef\xbb\xbf \r\n").upper()
    if head.startswith(b"BEGIN:VCALENDAR") or not head.startswith(b"BEGIN:"):
        return data
    ending = b"\n" if b"\r\n" not in data else b"\r\n"
    wrapper = b"BEGIN:VCALENDAR" + ending + b"VERSION:2.0" + ending + b"PRODID:-//corpus//EN"
    return wrapper + ending + data.rstrip(b"\r\n") + ending + b"END:VCALENDAR" + ending


# The reader's reasons (see integrations.calendars.ics), as short codes for counting.
_UNREADABLE_CODES = (
    ("no VEVENT", "no_event"),
    ("without UID", "no_uid"),
    ("no DTSTART", "no_dtstart"),
    ("broken properties", "broken_property"),
    ("bad DTSTART", "bad_times"),
    ("differ in type", "bad_times"),
    ("same RECURRENCE-ID", "duplicate_event"),
    ("not valid iCalendar", "not_icalendar"),
    ("not a VCALENDAR", "not_icalendar"),
)


def unreadable_code(reason: str) -> str:
    """A short code for the reason a file was unreadable."""
    return next((code for text, code in _UNREADABLE_CODES if text in reason), "other")


def run_corpus(files: Sequence[tuple[str, Path]], work: Path) -> CorpusReport:
    """Write into every event of every file (each in its own vdir folder under ``work``)."""
    report = CorpusReport()
    for number, (label, source) in enumerate(files):
        folder = work / f"{number:04d}"
        folder.mkdir()
        path = folder / "object.ics"
        original = as_calendar_object(source.read_bytes())
        path.write_bytes(original)
        report.files_read += 1
        provider = VdirProvider("corpus", folder, OWNER, default_timezone="Europe/Stockholm")
        changes = provider.read_changes(None)
        if changes.unreadable:
            report.files_skipped[f"unreadable:{unreadable_code(changes.unreadable[0].reason)}"] += 1
            continue
        if not changes.meetings:
            report.files_skipped["no_event"] += 1
            continue
        writes = [
            DescriptionWrite(m.ref, m.etag, f"{m.description}\n\n{TEXT}", f"h{i}")
            for i, m in enumerate(changes.meetings)
        ]
        reasons = Counter[str]()
        for outcome in provider.write(writes):
            if outcome.ok:
                report.events_written += 1
            else:
                reason = (
                    outcome.error.reason.value
                    if isinstance(outcome.error, UnsafeToWrite)
                    else type(outcome.error).__name__
                )
                reasons[reason] += 1
        report.events_skipped.update(reasons)
        after = path.read_bytes()
        if after == original:
            report.files_skipped[min(reasons) if reasons else "unchanged"] += 1
            continue
        report.files_written += 1
        if without_written_lines(original, None) != without_written_lines(after, None):
            report.changed_outside_description.append(label)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("folders", nargs="*", type=Path)
    args = parser.parse_args(argv)
    folders = args.folders or [SHIPPED, ICALENDAR_TESTS]
    logging.basicConfig(level=logging.ERROR)  # each skipped file is counted, not logged
    with tempfile.TemporaryDirectory(prefix="ics-corpus-") as work:
        report = run_corpus(corpus_files(folders), Path(work))
    print(json.dumps(report.as_dict(), indent=2))
    return 1 if report.changed_outside_description else 0


if __name__ == "__main__":
    sys.exit(main())
