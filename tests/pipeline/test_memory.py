"""The allocator settings of long-running commands (`pipeline.memory`).

Each check that changes the allocator runs in a child process: ``mallopt``
applies to the whole process, and the test runner's must stay as it was.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pipeline import memory

glibc = pytest.mark.skipif(memory._glibc() is None, reason="the C library is not glibc")


def child(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip()


@glibc
def test_tuning_sets_both_limits_when_the_user_chose_neither():
    said = child("""
        from pipeline.memory import tune_allocator
        print(sorted(tune_allocator({}).items()))
    """)
    assert said == str(sorted({"arena_max": memory.ARENAS,
                               "mmap_threshold": memory.MMAP_THRESHOLD}.items()))


@pytest.mark.parametrize("variable", ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_",
                                      "GLIBC_TUNABLES"])
def test_what_the_user_chose_through_glibc_is_left_alone(variable):
    assert memory.tune_allocator({variable: "4"}) == {}


@glibc
def test_frames_freed_by_many_threads_go_back_to_the_system():
    # Eight threads each hold 24 frame-sized buffers (640x480x3), then free them.
    # Under glibc's defaults, once a large buffer was freed (the first line
    # below) such buffers come from the threads' arenas, and about 150 MB stay
    # resident after they are freed; with the tuning each is mapped on its own,
    # so the resident set comes back to where it was.
    grown = child("""
        import threading
        from pipeline.memory import tune_allocator

        def resident_mb():
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * 4096 / 2**20

        tune_allocator({})
        first = bytearray(2_000_000)
        del first  # a large buffer freed: glibc's own threshold would rise now
        before = resident_mb()
        held, barrier = [], threading.Barrier(8)

        def work():
            mine = [bytearray(640 * 480 * 3) for _ in range(24)]
            barrier.wait()
            held.append(resident_mb())
            mine.clear()

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(max(held) - before, resident_mb() - before)
    """)
    peak, left = map(float, grown.split())
    assert peak > 150  # the buffers were really resident
    assert left < 20


@glibc
def test_release_says_it_trimmed():
    assert memory.release_free_memory() is True
