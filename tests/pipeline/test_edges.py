import asyncio

import numpy as np
import pytest

from pipeline.edges import LiveEdge, LosslessEdge
from pipeline.frame import Frame
from pipeline.limiter import FlowLimiter


def _frame(seq: int) -> Frame:
    return Frame(seq, 0, np.zeros((2, 2, 3), np.uint8))


def test_live_edge_keeps_the_newest_and_counts_every_drop():
    async def scenario():
        dropped: list[int] = []
        edge = LiveEdge("e", on_drop=lambda f: dropped.append(f.seq))
        for seq in range(5):
            await edge.put(_frame(seq))
        got = await edge.get()
        return edge.drops, dropped, got.seq, edge.qsize()

    drops, dropped, newest, left = asyncio.run(scenario())
    assert (drops, dropped, newest, left) == (4, [0, 1, 2, 3], 4, 0)


def test_live_edge_get_waits_for_a_frame():
    async def scenario():
        edge = LiveEdge("e")
        getter = asyncio.create_task(edge.get())
        await asyncio.sleep(0)
        assert not getter.done()
        edge.put_nowait(_frame(7))
        return (await getter).seq

    assert asyncio.run(scenario()) == 7


def test_lossless_edge_blocks_when_full_and_keeps_order():
    async def scenario():
        edge = LosslessEdge("e", capacity=2)
        await edge.put(_frame(0))
        await edge.put(_frame(1))
        third = asyncio.create_task(edge.put(_frame(2)))
        await asyncio.sleep(0.01)
        blocked = not third.done()
        out = [(await edge.get()).seq]
        await third
        out += [(await edge.get()).seq, (await edge.get()).seq]
        return blocked, out, edge.drops

    blocked, out, drops = asyncio.run(scenario())
    assert blocked
    assert out == [0, 1, 2]
    assert drops == 0


def test_lossless_edge_rejects_zero_capacity():
    with pytest.raises(ValueError, match="capacity"):
        LosslessEdge("e", capacity=0)


def test_flow_limiter_counts_and_waits():
    async def scenario():
        limiter = FlowLimiter(2)
        assert limiter.try_acquire() and limiter.try_acquire()
        assert not limiter.try_acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        was_waiting = not waiter.done()
        limiter.release()
        await waiter
        limiter.release()
        limiter.release()
        await asyncio.wait_for(limiter.wait_idle(), 1)
        return was_waiting, limiter.drops, limiter.in_flight

    assert asyncio.run(scenario()) == (True, 1, 0)


def test_flow_limiter_refuses_extra_release():
    async def scenario():
        FlowLimiter(1).release()

    with pytest.raises(RuntimeError, match="released more"):
        asyncio.run(scenario())


def test_flow_limiter_admits_a_replacing_frame_at_the_limit_without_a_drop():
    async def scenario():
        limiter = FlowLimiter(1)
        assert limiter.try_acquire()
        assert limiter.try_acquire(replacing=True)  # the waiting frame's token comes back
        over = limiter.in_flight
        limiter.release()
        assert not limiter.try_acquire()  # nothing to replace: a head drop
        return over, limiter.in_flight, limiter.drops

    assert asyncio.run(scenario()) == (2, 1, 1)


def test_drop_counts_belong_to_their_owners():
    async def scenario():
        limiter, edge = FlowLimiter(1), LiveEdge("e")
        for name, field in ((limiter, "in_flight"), (limiter, "drops"), (edge, "drops")):
            with pytest.raises(AttributeError):
                setattr(name, field, 5)
        assert LosslessEdge("e").drops == 0

    asyncio.run(scenario())


def test_lowering_the_limit_revokes_no_token_and_raising_it_admits_at_once():
    changes: list[tuple[int, int]] = []

    async def scenario():
        limiter = FlowLimiter(3, on_change=lambda n, limit: changes.append((n, limit)))
        assert limiter.try_acquire() and limiter.try_acquire() and limiter.try_acquire()
        limiter.set_limit(1)
        kept = limiter.in_flight  # nothing revoked
        limiter.release()
        refused_at_two = not limiter.try_acquire()  # 2 in flight, limit 1
        limiter.release()
        limiter.release()
        admitted_at_zero = limiter.try_acquire()
        waiter = asyncio.create_task(limiter.acquire())  # offline admission at the limit
        await asyncio.sleep(0)
        limiter.set_limit(2)
        await asyncio.wait_for(waiter, 1)
        return kept, refused_at_two, admitted_at_zero, limiter.in_flight, limiter.max_in_flight

    assert asyncio.run(scenario()) == (3, True, True, 2, 2)
    assert changes == [(1, 3), (2, 3), (3, 3), (3, 1), (2, 1), (1, 1), (0, 1),
                       (1, 1), (1, 2), (2, 2)]


def test_flow_limiter_refuses_a_limit_below_one():
    async def scenario():
        FlowLimiter(2).set_limit(0)

    with pytest.raises(ValueError, match="max_in_flight must be >= 1"):
        asyncio.run(scenario())
