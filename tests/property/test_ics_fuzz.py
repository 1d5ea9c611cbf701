"""Fuzz: mutated .ics files beside the sample week never cost the good events their agendas.

Each example writes the sample week into a vdir folder, adds one to three
copies of its files mutated at the byte level (flipped, inserted and deleted
bytes, duplicated lines, property values swapped for hostile ones: 2,000
characters, NUL, dates at year 9999, broken rules), and runs one full ``sync``
cycle over it (config, provider, engine, SQLite store). Then:

- the cycle finished and committed (no cycle-level error, no ``internal`` error);
- every good event that gets an agenda on its own got the same agenda;
- no good file that gets no agenda was changed.

``HYPOTHESIS_PROFILE=ci`` runs 150 examples; the bench figure in the issue
note is from ``HYPOTHESIS_PROFILE=ci pytest tests/property/test_ics_fuzz.py``.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from feedback_agendas.agendas.block import read_block
from feedback_agendas.agendas.model import EventRef
from feedback_agendas.integrations.calendars.vdir import VdirProvider
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.commands import EXAMPLE_CONFIG, demo_week_start, sync_all
from feedback_agendas.scheduler.service.sample_week import write_sample_week

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # the Monday of the committed sample week
HOSTILE_VALUES = [
    b"x" * 2000,
    b"evil\x00value",
    b"99991231T235959Z",
    b"00010101T000000",
    b"FREQ=DAILY;UNTIL=99991231T235959Z",
    b"FREQ=SECONDLY;INTERVAL=0",
    b"FREQ=YEARLY;BYMONTHDAY=31;BYMONTH=2",
    b"\xff\xfe\xfd",
    b"",
    b";;;:::,,,",
    b"&#9472;" * 300,
    b"\xe2\x94\x80" * 3000,  # runs of the marker's own character
]

KEY_PROPERTIES = [
    b"UID",
    b"RRULE",
    b"DTSTART",
    b"DTEND",
    b"RECURRENCE-ID",
    b"EXDATE",
    b"ATTENDEE",
    b"ORGANIZER",
    b"DESCRIPTION",
    b"STATUS",
    b"TZID",
]


@cache
def good_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_sample_week(folder, demo_week_start(NOW, "Europe/Stockholm"))
        return {p.name: p.read_bytes() for p in sorted(folder.glob("*.ics"))}


def config_for(folder: Path) -> AppConfig:
    cfg = load_config(EXAMPLE_CONFIG)
    calendar = cfg.calendars[0]
    return cfg.model_copy(
        update={
            "storage": cfg.storage.model_copy(update={"url": f"sqlite:///{folder / 'fa.db'}"}),
            "calendars": [calendar.model_copy(update={"path": folder / "cal"})],
        }
    )


def agendas_in(folder: Path) -> dict[EventRef, bool]:
    """Every readable event of the folder: does it hold an agenda block?"""
    changes = VdirProvider("mona", folder, "mona@example.com", "Europe/Stockholm").read_changes(
        None
    )
    return {m.ref: read_block(m.description) is not None for m in changes.meetings}


def run_cycle_on(files: dict[str, bytes]) -> tuple[object, dict[EventRef, bool], Path, str]:
    tmp = tempfile.mkdtemp(prefix="fa-fuzz-")
    folder = Path(tmp)
    cal = folder / "cal"
    cal.mkdir()
    for name, data in files.items():
        (cal / name).write_bytes(data)
    (report,) = sync_all(config_for(folder), NOW)
    return report, agendas_in(cal), cal, tmp


@cache
def baseline() -> dict[EventRef, bool]:
    report, agendas, _cal, _tmp = run_cycle_on(good_files())
    assert report.ok and report.writes == 7  # type: ignore[attr-defined]
    return agendas


@st.composite
def mutated_file(draw: st.DrawFn, index: int) -> tuple[str, bytes]:
    source = draw(st.sampled_from(sorted(good_files())))
    data = good_files()[source]
    # A UID of its own, so that a copy never clashes with the good file.
    data = data.replace(b"UID:" + source.removesuffix(".ics").encode(), b"UID:fuzz-%d" % index)
    for _ in range(draw(st.integers(1, 5))):
        lines = data.split(b"\r\n")
        how = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "value", "property"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if how == "flip":
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
        elif how == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=40)) + data[at:]
        elif how == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 200)) :]
        elif how == "duplicate":
            line = draw(st.integers(0, len(lines) - 1))
            lines.insert(line, lines[line])
            data = b"\r\n".join(lines)
        elif how == "value":
            line = draw(st.integers(0, len(lines) - 1))
            name, sep, _value = lines[line].partition(b":")
            if sep:
                lines[line] = name + b":" + draw(st.sampled_from(HOSTILE_VALUES))
            data = b"\r\n".join(lines)
        else:  # a property that decides what we do, set to a hostile value everywhere
            wanted = draw(st.sampled_from(KEY_PROPERTIES))
            value = draw(st.sampled_from(HOSTILE_VALUES))
            for i, line in enumerate(lines):
                name, sep, _old = line.partition(b":")
                if sep and name.split(b";")[0] == wanted:
                    lines[i] = name + b":" + value
            data = b"\r\n".join(lines)
    return f"zz-fuzz-{index}.ics", data


@st.composite
def mutated_files(draw: st.DrawFn) -> dict[str, bytes]:
    count = draw(st.integers(1, 3))
    return dict(draw(mutated_file(i)) for i in range(count))


def _alice(uid: bytes, rule: bytes = b"RRULE:FREQ=WEEKLY;BYDAY=TU") -> bytes:
    data = good_files()["mona-alice-1on1.ics"]
    return data.replace(b"UID:mona-alice-1on1@example.com", b"UID:" + uid).replace(
        b"RRULE:FREQ=WEEKLY;BYDAY=TU", rule
    )


def _line_twice(data: bytes, name: bytes) -> bytes:
    """``data`` with its first line of property ``name`` given twice (found by this fuzz)."""
    lines = data.split(b"\r\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(name))
    return b"\r\n".join([*lines[: at + 1], lines[at], *lines[at + 1 :]])


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_files())
@example({"zz-long-uid.ics": _alice(b"x" * 2000)})
@example({"zz-nul-uid.ics": _alice(b"evil\x00uid")})
@example({"zz-until.ics": _alice(b"until", b"RRULE:FREQ=DAILY;UNTIL=99991231T235959Z")})
@example({"zz-two-rids.ics": _line_twice(_alice(b"two-rids"), b"RECURRENCE-ID")})
def test_mutated_files_never_cost_the_good_events_their_agendas(bad: dict[str, bytes]) -> None:
    import shutil

    expected = baseline()
    report, agendas, cal, tmp = run_cycle_on({**good_files(), **bad})
    try:
        assert report.error is None, report.error_message  # type: ignore[attr-defined]
        assert "internal" not in report.errors, report.errors  # type: ignore[attr-defined]
        got = {ref: agendas.get(ref) for ref in expected}
        assert got == expected
        for name, data in good_files().items():
            # A good file without an agenda of its own stays byte for byte.
            refs = [ref for ref in expected if ref.event_id.startswith(name.removesuffix(".ics"))]
            if refs and not any(expected[ref] for ref in refs):
                assert (cal / name).read_bytes() == data, name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
