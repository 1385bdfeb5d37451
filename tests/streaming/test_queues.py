"""The hand-offs between stream threads: newest-item policy, lossless mode, drop-oldest sink queues."""

from __future__ import annotations

import threading
import time

import pytest

from usvid.streaming.queues import Closed, DropOldestQueue, LatestSlot


def test_latest_slot_keeps_newest_and_counts_dropped():
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert len(slot) == 1
    assert slot.get(timeout=0) == 4
    assert slot.dropped == 4
    assert slot.get(timeout=0.01) is None


def test_latest_slot_lossless_waits_for_consumer():
    slot: LatestSlot[int] = LatestSlot(lossless=True)
    got: list[int] = []

    def consume() -> None:
        for _ in range(20):
            got.append(slot.get(timeout=2))
            time.sleep(0.001)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(20):
        slot.put(i)
    consumer.join(5)
    assert got == list(range(20))
    assert slot.dropped == 0


def test_latest_slot_close_wakes_producer_and_consumer():
    slot: LatestSlot[int] = LatestSlot(lossless=True)
    slot.put(1)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            slot.put(2)  # blocks: the slot is full and lossless
        except Closed as err:
            errors.append(err)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.05)
    slot.close()
    producer.join(2)
    assert not producer.is_alive() and len(errors) == 1
    assert slot.get(timeout=0) == 1  # a pending item is still delivered once
    assert slot.get(timeout=0) is None
    with pytest.raises(Closed):
        slot.put(3)


def test_drop_oldest_queue_is_bounded_and_fifo():
    q: DropOldestQueue[int] = DropOldestQueue(3)
    for i in range(10):
        q.put(i)
    assert len(q) == 3 and q.dropped == 7
    assert [q.get(0), q.get(0), q.get(0)] == [7, 8, 9]
    q.close()
    assert q.get(0.01) is None
    with pytest.raises(Closed):
        q.put(1)


def test_drop_oldest_queue_rejects_zero_size():
    with pytest.raises(ValueError, match="maxsize"):
        DropOldestQueue(0)
