"""The run's request slots: never more holders than slots; a freed slot goes to the waiting
request heading the longest chain, then to the first come; a wait ends when its check
raises, and the line moves on without it."""

from __future__ import annotations

import threading
import time

import pytest

from gscsync.api.slots import Slots


class Gone(Exception):
    pass


def waiter(slots: Slots, follows: int, order: list[int], hold: threading.Event) -> threading.Thread:
    def run() -> None:
        slots.acquire(follows)
        order.append(follows)
        hold.wait(5)
        slots.release()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def settle(slots: Slots, waiting: int) -> None:
    """Until ``waiting`` requests are in line (threads start in their own time)."""
    deadline = time.monotonic() + 5
    while len(slots._waiting) != waiting:
        assert time.monotonic() < deadline, "waiters never lined up"
        time.sleep(0.001)


def test_a_freed_slot_goes_to_the_longest_chain_then_first_come() -> None:
    slots = Slots(1)
    slots.acquire()  # the one slot is taken: everyone below waits
    order: list[int] = []
    go = threading.Event()
    go.set()  # each holder releases at once
    threads = []
    for n, follows in enumerate((0, 1, 3, 1, 2)):
        threads.append(waiter(slots, follows, order, go))
        settle(slots, n + 1)
    slots.release()
    for thread in threads:
        thread.join(5)
    assert order == [3, 2, 1, 1, 0]


def test_never_more_holders_than_slots() -> None:
    slots = Slots(3)
    lock, now, peak = threading.Lock(), [0], [0]

    def work(follows: int) -> None:
        for _ in range(20):
            slots.acquire(follows)
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            time.sleep(0.0005)
            with lock:
                now[0] -= 1
            slots.release()

    threads = [threading.Thread(target=work, args=(n % 4,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert peak[0] == 3 and now[0] == 0 and slots._free == 3 and not slots._waiting


def test_a_wait_its_check_ends_leaves_the_line_and_lets_the_next_go() -> None:
    slots = Slots(1)
    slots.acquire()
    stop = threading.Event()
    outcome: list[str] = []

    def check() -> None:
        if stop.is_set():
            raise Gone

    def doomed() -> None:  # heads the line (most follows), then is told to give up
        try:
            slots.acquire(5, check, poll=0.01)
        except Gone:
            outcome.append("gave up")

    first = threading.Thread(target=doomed, daemon=True)
    first.start()
    settle(slots, 1)
    order: list[int] = []
    go = threading.Event()
    go.set()
    second = waiter(slots, 0, order, go)
    settle(slots, 2)
    stop.set()
    first.join(5)
    assert outcome == ["gave up"] and len(slots._waiting) == 1
    slots.release()  # the slot the one who left would have had goes to the next
    second.join(5)
    assert order == [0] and slots._free == 1 and not slots._waiting


@pytest.mark.parametrize("free", [True, False])
def test_a_check_that_raises_with_a_slot_free_takes_none(free: bool) -> None:
    slots = Slots(1)
    if not free:
        slots.acquire()

    def check() -> None:
        raise Gone

    if free:  # a free slot is taken at once: the check never runs
        slots.acquire(0, check, poll=0.01)
        assert slots._free == 0
    else:
        with pytest.raises(Gone):
            slots.acquire(0, check, poll=0.01)
        assert slots._free == 0 and not slots._waiting
