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
        limiter, admitted = FlowLimiter[int](2), []
        assert limiter.offer(0, admitted.append) and limiter.offer(1, admitted.append)
        assert not limiter.offer(2, admitted.append)  # parked, not dropped
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        was_waiting = not waiter.done()
        limiter.release()  # the parked frame takes the token at once
        still_waiting = not waiter.done()
        limiter.release()
        await waiter
        limiter.release()
        limiter.release()
        await asyncio.wait_for(limiter.wait_idle(), 1)
        return was_waiting, still_waiting, admitted, limiter.drops, limiter.in_flight

    assert asyncio.run(scenario()) == (True, True, [0, 1, 2], 0, 0)


def test_flow_limiter_refuses_extra_release():
    async def scenario():
        FlowLimiter[int](1).release()

    with pytest.raises(RuntimeError, match="released more"):
        asyncio.run(scenario())


def test_flow_limiter_admits_a_replacing_frame_at_the_limit_without_a_drop():
    async def scenario():
        limiter, admitted = FlowLimiter[int](1), []
        assert limiter.offer(0, admitted.append)
        assert limiter.offer(1, admitted.append, replacing=True)  # 0's token comes back
        over = limiter.in_flight
        limiter.release()
        assert not limiter.offer(2, admitted.append)  # nothing to replace: parked
        return over, limiter.in_flight, limiter.parked, limiter.drops, admitted

    assert asyncio.run(scenario()) == (2, 1, True, 0, [0, 1])


def test_the_newest_parked_frame_takes_the_next_token_and_the_ones_it_replaced_are_drops():
    async def scenario():
        limiter, admitted = FlowLimiter[int](1), []
        assert limiter.offer(0, admitted.append)
        refused = [limiter.offer(n, admitted.append) for n in (1, 2, 3)]
        before = list(admitted)
        limiter.release()  # 0 leaves: 3, the newest, enters at once
        after_release = (list(admitted), limiter.in_flight, limiter.parked)
        assert not limiter.offer(4, admitted.append)
        limiter.discard_parked()  # the run ends with 4 still parked
        limiter.discard_parked()  # nothing left: no second drop
        limiter.release()
        return refused, before, after_release, limiter.drops, limiter.parked, limiter.in_flight

    assert asyncio.run(scenario()) == (
        [False, False, False], [0], ([0, 3], 1, False), 3, False, 0)


def test_raising_the_limit_admits_the_parked_frame_and_idle_waits_for_it():
    async def scenario():
        limiter, admitted = FlowLimiter[int](1), []
        limiter.offer(0, admitted.append)
        limiter.offer(1, admitted.append)
        limiter.set_limit(2)
        raised = list(admitted)
        limiter.offer(2, admitted.append)
        limiter.release()  # a token comes back: the parked 2 takes it
        idle = asyncio.create_task(limiter.wait_idle())
        await asyncio.sleep(0)
        busy = not idle.done()
        limiter.release()
        limiter.release()
        await asyncio.wait_for(idle, 1)
        return raised, admitted, busy, limiter.drops

    assert asyncio.run(scenario()) == ([0, 1], [0, 1, 2], True, 0)


def test_an_admission_that_frees_a_token_does_not_admit_the_parked_frame_twice():
    async def scenario():
        limiter: FlowLimiter[int] = FlowLimiter(1)
        admitted: list[int] = []

        def admit_and_fail(n: int) -> None:
            admitted.append(n)
            limiter.release()  # the frame is refused at once (a stage filters it)

        limiter.offer(0, admitted.append)
        limiter.offer(1, admit_and_fail)
        limiter.release()
        return admitted, limiter.in_flight, limiter.parked

    assert asyncio.run(scenario()) == ([0, 1], 0, False)


def test_drop_counts_belong_to_their_owners():
    async def scenario():
        limiter, edge = FlowLimiter[int](1), LiveEdge("e")
        for name, field in ((limiter, "in_flight"), (limiter, "drops"), (edge, "drops")):
            with pytest.raises(AttributeError):
                setattr(name, field, 5)
        assert LosslessEdge("e").drops == 0

    asyncio.run(scenario())


def test_lowering_the_limit_revokes_no_token_and_raising_it_admits_at_once():
    changes: list[tuple[int, int]] = []

    async def scenario():
        limiter = FlowLimiter[int](3, on_change=lambda n, limit: changes.append((n, limit)))
        admitted: list[int] = []
        assert all(limiter.offer(n, admitted.append) for n in range(3))
        limiter.set_limit(1)
        kept = limiter.in_flight  # nothing revoked
        limiter.release()
        refused_at_two = not limiter.offer(3, admitted.append)  # 2 in flight, limit 1: parked
        limiter.release()
        limiter.release()  # 0 in flight: the parked frame enters
        parked_entered = admitted[-1] == 3 and limiter.in_flight == 1
        limiter.release()
        admitted_at_zero = limiter.offer(4, admitted.append)
        waiter = asyncio.create_task(limiter.acquire())  # offline admission at the limit
        await asyncio.sleep(0)
        limiter.set_limit(2)
        await asyncio.wait_for(waiter, 1)
        return (kept, refused_at_two, parked_entered, admitted_at_zero, limiter.in_flight,
                limiter.max_in_flight)

    assert asyncio.run(scenario()) == (3, True, True, True, 2, 2)
    assert changes == [(1, 3), (2, 3), (3, 3), (3, 1), (2, 1), (1, 1), (0, 1), (1, 1),
                       (0, 1), (1, 1), (1, 2), (2, 2)]


def test_flow_limiter_refuses_a_limit_below_one():
    async def scenario():
        FlowLimiter[int](2).set_limit(0)

    with pytest.raises(ValueError, match="max_in_flight must be >= 1"):
        asyncio.run(scenario())
