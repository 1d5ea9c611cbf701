"""Hypothesis: on calendars with unusual but valid syntax, a write changes only two lines.

Generated objects vary what other programs vary: LF or CRLF, property order,
parameter quoting (values with ``:;,``), escaped text, folds at odd places
(never inside a character), a DATE with a TZID, a TZID with a trailing ``Z``,
an alarm with its own DESCRIPTION, an existing DESCRIPTION and hash or none.
Whatever is written, the object must differ from the original only in the
DESCRIPTION and ``X-FEEDBACK-AGENDAS-HASH`` lines of that VEVENT (checked by
:mod:`tests.fidelity`), and read back as written.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from feedback_agendas.agendas.model import DescriptionWrite
from feedback_agendas.integrations.calendars.ics import (
    meetings_from_calendar,
    parse_calendar,
    rewrite_descriptions,
)
from tests.fidelity import logical_lines, only_written_lines_differ

SAFE_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters="\x85"
    ),
    max_size=40,
)


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")


@st.composite
def fold_points(draw: st.DrawFn, line: str) -> str:
    """``line`` folded after some characters (a space or a tab starts each continuation)."""
    if len(line) < 2:
        return line
    cuts = sorted(draw(st.sets(st.integers(1, len(line) - 1), max_size=3)))
    pieces, last = [], 0
    for cut in cuts:
        pieces.append(line[last:cut])
        last = cut
    pieces.append(line[last:])
    separators = [draw(st.sampled_from(["\n ", "\n\t"])) for _ in pieces[1:]]
    out = pieces[0]
    for separator, piece in zip(separators, pieces[1:], strict=True):
        out += separator + piece
    return out


@st.composite
def calendars(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A calendar object, and whether its event is all-day."""
    start_forms = [
        ("DTSTART;TZID=Europe/Berlin:20261202T100000", "DTEND;TZID=Europe/Berlin:20261202T103000"),
        ("DTSTART;TZID=Europe/Berlin:20261202", "DTEND;TZID=Europe/Berlin:20261203"),
        ("DTSTART;VALUE=DATE;TZID=Europe/Berlin:20261202", "DTEND;VALUE=DATE:20261203"),
        (
            "DTSTART;TZID=America/New_York:20261222T170000Z",
            "DTEND;TZID=America/New_York:20261222T173000Z",
        ),
        ("DTSTART:20261202T100000Z", "DURATION:PT30M"),
    ]
    start, end = draw(st.sampled_from(start_forms))
    all_day = not start.endswith(("00", "Z"))
    quote = draw(st.booleans())
    cn = '"Doe, Jane"' if quote else "Jane"
    props = [
        start,
        end,
        f"SUMMARY:{escape(draw(SAFE_TEXT))}",
        f'X-THING;X-Q="a:b;c,d";X-P={draw(st.sampled_from(["x", chr(34) + "y" + chr(34)]))}:v',
        f"ATTENDEE;CN={cn};PARTSTAT=ACCEPTED:mailto:jane@example.com",
        "RRULE:" + ";".join(draw(st.permutations(["FREQ=WEEKLY", "BYDAY=WE", "INTERVAL=2"]))),
        "RESOURCES:EASEL,PROJECTOR,VCR",
        "GEO:+37.386013;-122.082932",
        "REQUEST-STATUS:2.0;Success",
        'LOCATION:Room \\"A\\"\\, floor 2\\nleft',
    ]
    if draw(st.booleans()):
        props.append(f"DESCRIPTION:{escape(draw(SAFE_TEXT))}\\nmore")
    if draw(st.booleans()):
        props.append("X-FEEDBACK-AGENDAS-HASH:old")
    props = draw(st.permutations(props))
    body = ["UID:gen@example.com", "DTSTAMP:20261101T120000Z", *props]
    if draw(st.booleans()):
        body += [
            "BEGIN:VALARM",
            "TRIGGER:-P1W",
            "ACTION:DISPLAY",
            "DESCRIPTION:alarm",
            "END:VALARM",
        ]
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//gen//EN",
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Berlin",
        "BEGIN:STANDARD",
        "DTSTART:19701025T030000",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+010000",
        "END:STANDARD",
        "END:VTIMEZONE",
        "BEGIN:VEVENT",
        *[draw(fold_points(line)) for line in body],
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    ending = draw(st.sampled_from(["\r\n", "\n"]))
    return ("\n".join(lines) + "\n").replace("\n", ending).encode(), all_day


@given(
    generated=calendars(),
    description=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.just("\n"),
        max_size=300,
    ),
    block_hash=st.none() | st.text("0123456789abcdef", min_size=1, max_size=64),
)
def test_a_write_changes_only_the_description_and_hash_lines(
    generated: tuple[bytes, bool], description: str, block_hash: str | None
) -> None:
    data, all_day = generated
    (meeting,) = meetings_from_calendar(
        parse_calendar(data), calendar_name="c", owner="mona@example.com", etag="e", raw=data
    )
    assert meeting.editable
    assert meeting.all_day == all_day
    new, applied, failed = rewrite_descriptions(
        data,
        [(0, DescriptionWrite(meeting.ref, "e", description, block_hash))],
        source="gen.ics",
        calendar_name="c",
        owner="mona@example.com",
    )
    assert failed == {} and len(applied) == 1
    assert new is not None
    assert only_written_lines_differ(data, new)
    assert (b"\r\n" in new) == (b"\r\n" in data)
    (after,) = meetings_from_calendar(
        parse_calendar(new), calendar_name="c", owner="mona@example.com", etag="e"
    )
    assert after.description == description.replace("\r\n", "\n").replace("\r", "\n")
    assert after.stored_hash == (block_hash or None)
    for line in set(logical_lines(new)) - set(logical_lines(data)):
        parts = line.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n ")
        assert all(len(part) <= 75 and part.decode("utf-8") for part in parts)
