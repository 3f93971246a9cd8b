"""Large results cross through shared memory, arrive intact, and leave no segment behind."""

from __future__ import annotations

import os

import _tasks
import numpy as np
import pytest

from mosaic_parallel import transfer


def _segments() -> set[str]:
    return (
        {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}
        if os.path.isdir("/dev/shm")
        else set()
    )


def test_encode_decode_round_trip_unlinks_segments():
    before = _segments()
    data = {"big": np.arange(3 * 2**20 // 8, dtype=np.float64), "small": np.arange(4), "text": "x"}
    encoded = transfer.encode(data)
    assert any(isinstance(p, tuple) for p in encoded[1])  # the big array went to shared memory
    assert not any(
        isinstance(p, tuple) and p[2] < transfer.SHARED_MEMORY_THRESHOLD for p in encoded[1]
    )
    back = transfer.decode(encoded)
    np.testing.assert_array_equal(back["big"], data["big"])
    np.testing.assert_array_equal(back["small"], data["small"])
    back["big"][0] = -1.0  # writable, like any array
    assert _segments() == before


def test_encode_without_shared_memory_keeps_everything_inline():
    encoded = transfer.encode(np.zeros(2**20), shared_memory=False)
    assert all(isinstance(p, bytes) for p in encoded[1])
    assert transfer.decode(encoded).shape == (2**20,)


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs POSIX shared memory in /dev/shm")
def test_large_numpy_result_reaches_the_gui_intact(manager, record, qtbot):
    before = _segments()
    rec = record(manager)
    task = manager.submit_task("big", _tasks.big_array, args=(64,))
    rec.wait(qtbot, task, timeout=60)
    result = rec.result(task)
    array = result["array"]
    assert array.shape == (64 * 2**20 // 8,) and array[-1] == array.shape[0] - 1
    assert result["label"] == "big" and result["small"].tolist() == [0, 1, 2, 3, 4]
    assert _segments() == before
