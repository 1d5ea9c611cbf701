"""Byte-level edits of calendar objects: folding, reading forms, and when an edit is refused."""

from __future__ import annotations

import pytest

from feedback_agendas.integrations.calendars.ics_lines import (
    Blocker,
    EditBlocked,
    edit_blocker,
    edit_description,
    fold,
    normalise_for_reading,
    split_lines,
)
from tests.fidelity import calendar, only_written_lines_differ


def event(*lines: str | bytes, ending: bytes = b"\r\n") -> bytes:
    return calendar(
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "BEGIN:VEVENT",
        "UID:u1",
        "DTSTART:20261202T100000Z",
        *lines,
        "END:VEVENT",
        "END:VCALENDAR",
        ending=ending,
    )


def test_fold_keeps_lines_at_75_octets_and_utf8_sequences_whole() -> None:
    content = b"DESCRIPTION:" + "å€😀".encode() * 40
    folded = fold(content, b"\r\n")
    parts = folded.removesuffix(b"\r\n").split(b"\r\n ")
    assert b"".join(parts) == content
    assert all(len(part) <= 74 for part in parts)  # 75 with a continuation's space
    assert all(len(p) >= 71 for p in parts[:-1])  # cut at most 3 octets early
    for part in parts:
        part.decode("utf-8")  # never split inside a character
    assert fold(b"SHORT:x", b"\n") == b"SHORT:x\n"


def test_fold_never_splits_an_escape() -> None:
    content = b"DESCRIPTION:" + b"a" * 61 + b"\\nrest"  # the backslash is octet 74
    first, rest = fold(content, b"\r\n").split(b"\r\n ", 1)
    assert first.endswith(b"a") and rest.startswith(b"\\n")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"DTSTART;TZID=Europe/Berlin:20261202", b"DTSTART;VALUE=DATE:20261202"),
        (b"DTSTART;TZID=Europe/Berlin;VALUE=DATE:20261202", b"DTSTART;VALUE=DATE:20261202"),
        (b"DTEND;VALUE=DATE;TZID=Europe/Berlin:20261203", b"DTEND;VALUE=DATE:20261203"),
        (b"EXDATE;TZID=X:20261202,20261209", b"EXDATE;VALUE=DATE:20261202,20261209"),
        (
            b"DTSTART;X-A=1;TZID=America/New_York:20261222T170000Z",
            b"DTSTART;X-A=1:20261222T170000Z",
        ),
    ],
)
def test_a_date_with_tzid_reads_as_a_date_and_a_tzid_with_z_as_utc(
    line: bytes, expected: bytes
) -> None:
    assert normalise_for_reading(event(line)) == event(expected)


def test_other_times_and_objects_without_tzid_are_read_as_they_are() -> None:
    plain = event("DTEND;TZID=Europe/Berlin:20261202T110000", "SUMMARY:TZID=x:20261202")
    assert normalise_for_reading(plain) is plain
    mixed = event("EXDATE;TZID=Europe/Berlin:20261202T100000Z,20261209T100000")
    assert normalise_for_reading(mixed) is mixed


def test_an_edit_keeps_lf_endings_and_adds_the_hash_after_description() -> None:
    before = event("SUMMARY:s", "DESCRIPTION;LANGUAGE=en:old", "X-A:1", ending=b"\n")
    after = edit_description(before, 0, "u1", "new; text, here\nline 2", "h1")
    assert (
        b"DESCRIPTION;LANGUAGE=en:new\\; text\\, here\\nline 2\nX-FEEDBACK-AGENDAS-HASH:h1\n"
        in after
    )
    assert b"\r" not in after
    assert only_written_lines_differ(before, after)


def test_an_empty_description_and_no_hash_remove_both_lines() -> None:
    before = event("DESCRIPTION:old", "X-FEEDBACK-AGENDAS-HASH:h0", "SUMMARY:s")
    after = edit_description(before, 0, "u1", "", None)
    assert after == event("SUMMARY:s")


def test_a_new_description_goes_before_the_first_subcomponent() -> None:
    before = event("SUMMARY:s", "BEGIN:VALARM", "DESCRIPTION:alarm", "END:VALARM")
    after = edit_description(before, 0, "u1", "agenda", "h")
    assert after == event(
        "SUMMARY:s",
        "DESCRIPTION:agenda",
        "X-FEEDBACK-AGENDAS-HASH:h",
        "BEGIN:VALARM",
        "DESCRIPTION:alarm",
        "END:VALARM",
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (event(b"SUMMARY:Caf\xe9"), Blocker.NOT_UTF8),
        (event("SUMMARY:a", "", " folded after a blank line"), Blocker.LINE_BREAKS),
        (event("DESCRIPTION:a", "DESCRIPTION:b"), Blocker.SEVERAL_DESCRIPTIONS),
        (event("DESCRIPTION;ENCODING=QUOTED-PRINTABLE:a=20b"), Blocker.ENCODED_DESCRIPTION),
        (event('DESCRIPTION;X-A="unclosed:a'), Blocker.UNPARSABLE_LINE),
        (event("UID:u2"), Blocker.AMBIGUOUS_COMPONENT),
    ],
)
def test_an_uncertain_edit_is_refused_with_its_reason(data: bytes, reason: Blocker) -> None:
    with pytest.raises(EditBlocked) as caught:
        edit_description(data, 0, "u1", "x", "h")
    assert caught.value.reason is reason


def test_a_uid_that_does_not_match_the_parsed_event_is_not_found() -> None:
    with pytest.raises(EditBlocked) as caught:
        edit_description(event("SUMMARY:s"), 0, "other", "x", "h")
    assert caught.value.reason is Blocker.COMPONENT_NOT_FOUND
    with pytest.raises(EditBlocked):
        edit_description(event("SUMMARY:s"), 1, "u1", "x", "h")


def test_folded_lines_and_a_bom_are_split_into_logical_lines() -> None:
    data = b"\xef\xbb\xbf" + event("SUMMARY:a\r\n b\r\n\tc", "DESCRIPTION:d")
    assert edit_blocker(data) is None
    raw = split_lines(data)
    summary = next(line for line in raw.lines if line.name == b"SUMMARY")
    assert summary.content == b"SUMMARY:abc"
    assert data[summary.start : summary.end] == b"SUMMARY:a\r\n b\r\n\tc\r\n"
    (vevent,) = raw.events()
    assert [raw.lines[i].name for i in vevent.properties] == [
        b"UID",
        b"DTSTART",
        b"SUMMARY",
        b"DESCRIPTION",
    ]
