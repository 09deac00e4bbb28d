"""The bridge's PIN dialog (reader_bridge.pin.DialogPinSource) without HTTP: its time limit on a clock the
test holds, and what several browser requests at once may do to it (the server handles each in a thread)."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from reader_bridge.errors import PinTimeoutError
from reader_bridge.pin import CHINA_TIME, MAX_EXTENSIONS, DialogPinSource, PinRequest
from sdk.clock import FixedClock

# 2024-05-01 14:00 in China.
WALL_NOW = datetime.datetime(2024, 5, 1, 14, 0, tzinfo=CHINA_TIME).timestamp()


@dataclass
class _OpenDialog:
    """A PIN question being asked in its own thread, as the bridge's operation thread asks it."""

    source: DialogPinSource
    events: list[Mapping[str, object]] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)
    returned: threading.Event = field(default_factory=threading.Event)
    announced: threading.Event = field(default_factory=threading.Event)
    events_when_returned: int = -1

    def announce(self, event: Mapping[str, object]) -> None:
        self.events.append(event)
        self.announced.set()

    @property
    def dialog_id(self) -> str:
        return str(self.events[0]["pin_url"]).rsplit("/", 1)[1]

    @property
    def extended(self) -> int:
        return sum(1 for event in self.events if event.get("extended"))


@contextmanager
def _asking(source: DialogPinSource, request: PinRequest) -> Iterator[_OpenDialog]:
    dialog = _OpenDialog(source)

    def ask() -> None:
        try:
            dialog.answer.append(source.ask_pin(request, dialog.announce))
        except BaseException as exc:  # handed to the test
            dialog.error.append(exc)
        finally:
            # What the operation would emit next is its terminal event (done or error).
            dialog.events_when_returned = len(dialog.events)
            dialog.returned.set()

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    try:
        assert dialog.announced.wait(5)
        yield dialog
    finally:
        request.cancelled.set()
        thread.join(5)


def _all_at_once(count: int, action: Callable[[], object]) -> None:
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait(5)
        action()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


class _SlowClock(FixedClock):
    """A fixed clock that lets other threads run whenever it is read, to widen any unlocked window."""

    def __call__(self) -> float:
        threading.Event().wait(0.001)
        return self.now


def test_concurrent_more_time_requests_never_exceed_the_limit() -> None:
    source = DialogPinSource("http://127.0.0.1:1", clock=_SlowClock(1000.0), wall_clock=FixedClock(WALL_NOW))
    with _asking(source, PinRequest("verify", 3, 60)) as dialog:
        _all_at_once(4 * MAX_EXTENSIONS, lambda: source.submit(dialog.dialog_id, {"action": "more_time"}))
        assert dialog.extended == MAX_EXTENSIONS
        page = source.page(dialog.dialog_id).html
        assert 'value="more_time"' not in page  # no more offered once the limit is reached
        assert source.submit(dialog.dialog_id, {"action": "submit", "pin": "123456"}).status == 200
        assert dialog.returned.wait(5) and dialog.answer == ["123456"]


class _RequestThatLetsOthersIn(PinRequest):
    """Reading ``timeout`` (as "More time" does), once armed, says so and waits a moment for the dialog to
    end meanwhile: the window in which a late ``enter_pin`` could slip out."""

    armed = False
    reading = threading.Event()
    ended = threading.Event()

    @property
    def timeout(self) -> float:
        if self.armed:
            self.reading.set()
            self.ended.wait(0.3)
        return 60.0

    @timeout.setter
    def timeout(self, value: float) -> None:
        pass


def test_no_enter_pin_event_after_the_dialog_has_ended() -> None:
    request = _RequestThatLetsOthersIn("verify", 3, 60)
    source = DialogPinSource("http://127.0.0.1:1")
    with _asking(source, request) as dialog:
        request.armed, request.reading, request.ended = True, threading.Event(), dialog.returned
        more = threading.Thread(target=source.submit, args=(dialog.dialog_id, {"action": "more_time"}))
        more.start()
        assert request.reading.wait(5)
        source.submit(dialog.dialog_id, {"action": "submit", "pin": "123456"})
        more.join(5)
        assert dialog.returned.wait(5) and dialog.answer == ["123456"]
        # Announced (if at all) before the question ended: the terminal event stays the last one.
        assert len(dialog.events) == dialog.events_when_returned


def test_the_dialog_gives_up_on_its_clock_and_shows_the_time_it_waits_until() -> None:
    clock = FixedClock(1000.0)
    source = DialogPinSource("http://127.0.0.1:1", clock=clock, wall_clock=FixedClock(WALL_NOW))
    with _asking(source, PinRequest("verify", 3, 120)) as dialog:
        assert dialog.events[0]["pin_expires_in"] == 120
        clock.advance(30)
        page = source.page(dialog.dialog_id, lang="en").html
        assert "until 14:01, 2 minutes from now" in page  # 90 s left from 14:00, rounded up to minutes
        source.submit(dialog.dialog_id, {"action": "more_time"})
        assert dialog.events[-1]["pin_expires_in"] == 120
        clock.advance(119)
        assert not dialog.returned.wait(0.3)  # one second still left
        clock.advance(1)
        assert dialog.returned.wait(5)
    assert len(dialog.error) == 1 and isinstance(dialog.error[0], PinTimeoutError)
    assert source.submit(dialog.dialog_id, {"action": "more_time"}).status == 404
