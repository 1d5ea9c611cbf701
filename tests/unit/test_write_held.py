"""A write a provider holds back on purpose (WriteHeld) is neither written nor failed.

Any provider may answer a write with :class:`WriteHeld` (Microsoft Graph does,
to spare attendees a meeting update). The cycle then records the event as
``held``: no error, no pending retry, the hash it knew kept, and a look again
at the time the provider asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from feedback_agendas.agendas.errors import WriteHeld
from feedback_agendas.agendas.model import DescriptionWrite, EventRef, WriteOutcome
from feedback_agendas.agendas.policy import Org, Rules, Team
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import HELD, run_cycle
from tests.support.meetings import mona_meeting

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
TOMORROW = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


class HoldingProvider(MemoryProvider):
    """Holds every write back until ``release``; counts the writes it was asked for."""

    def __init__(self) -> None:
        super().__init__("mona", "mona@example.com")
        self.hold_until: datetime | None = TOMORROW
        self.asked = 0

    def write(self, writes: Sequence[DescriptionWrite]) -> list[WriteOutcome]:
        self.asked += len(writes)
        if self.hold_until is None:
            return super().write(writes)
        held = WriteHeld("not now", self.hold_until)
        return [WriteOutcome(ref=w.ref, error=held) for w in writes]


def test_a_held_write_is_recorded_as_held_and_looked_at_again_when_asked() -> None:
    rules = Rules(
        org=Org(
            internal_domains=frozenset({"example.com"}),
            teams=(Team("t", "mona@example.com", frozenset({"alice@example.com"})),),
        )
    )
    provider = HoldingProvider()
    ref = EventRef("mona", "one")
    provider.put(
        mona_meeting(
            "one",
            "Alice / Mona",
            NOW + timedelta(days=2),
            ["mona@example.com", "alice@example.com"],
        )
    )
    store = Store.open("sqlite:///:memory:")
    renderer = AgendaRenderer()
    try:
        report = run_cycle(provider, store, rules, renderer, NOW)
        assert report.ok and report.writes == 0 and report.errors == {}
        assert report.outcomes[ref] == HELD
        record = store.records("mona")[ref]
        assert record.action == HELD and not record.pending_write
        assert record.block_hash is None  # nothing of ours is in the event yet
        assert record.revisit_at == TOMORROW
        # Not due before tomorrow: a quiet cycle asks for no write.
        assert run_cycle(provider, store, rules, renderer, NOW + timedelta(hours=1)).ok
        assert provider.asked == 1
        # Tomorrow the event is read again and written.
        provider.hold_until = None
        later = run_cycle(provider, store, rules, renderer, TOMORROW + timedelta(hours=1))
        assert later.writes == 1 and provider.asked == 2
        assert store.records("mona")[ref].block_hash is not None
    finally:
        store.close()
