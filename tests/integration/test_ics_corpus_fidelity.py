"""Real .ics files from other projects: a write changes nothing outside DESCRIPTION and our hash.

Runs :mod:`bench.ics_corpus` over the shipped corpus (``tests/data/ics-corpus``:
khal's test files and our own minimal files, see its README) and the test
files of the installed icalendar. ``python -m bench.ics_corpus`` prints the
same figures.
"""

from __future__ import annotations

from pathlib import Path

from bench.ics_corpus import ICALENDAR_TESTS, SHIPPED, corpus_files, run_corpus


def test_no_written_corpus_file_changes_outside_the_description_and_hash_lines(
    tmp_path: Path,
) -> None:
    report = run_corpus(corpus_files([SHIPPED, ICALENDAR_TESTS]), tmp_path)
    print("\n", report.as_dict())
    assert report.changed_outside_description == []
    assert report.files_read >= 240
    assert report.files_written >= 130  # 139 with icalendar 7.3.0 under pytest
    assert report.events_written >= 160
    # Our own files that cannot be edited with certainty are skipped, by reason.
    for reason in ("not_utf8", "several_descriptions", "encoded_description", "line_breaks"):
        assert report.files_skipped[reason] == 1, reason


def test_the_skipped_files_are_left_byte_for_byte(tmp_path: Path) -> None:
    own = SHIPPED / "own"
    names = ["latin1-bytes.ics", "several-descriptions.ics", "quoted-printable-description.ics"]
    files = [(name, own / name) for name in names]
    report = run_corpus(files, tmp_path)
    assert report.files_written == 0 and report.events_written == 0
    for number, (_, source) in enumerate(files):
        assert (tmp_path / f"{number:04d}" / "object.ics").read_bytes() == source.read_bytes()
