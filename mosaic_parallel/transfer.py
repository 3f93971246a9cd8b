"""How results cross the process boundary: pickle protocol 5, large buffers via shared memory.

Large buffers (numpy arrays and the like) skip the pipe: the worker copies each once into a
fresh shared-memory segment and sends its name; the GUI process maps the segment, unlinks
its name at once, and hands the mapping to the unpickler, so the result's memory *is* that
mapping, with no copy on the GUI side. The mapping goes away with the last object that uses
it. Qt-free.
"""

from __future__ import annotations

import mmap
import pickle
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import cloudpickle

__all__ = ["SHARED_MEMORY_THRESHOLD", "decode", "encode"]

#: Buffers at least this large (bytes) travel through shared memory.
SHARED_MEMORY_THRESHOLD = 1 << 20

#: ``(pickled bytes, [buffer bytes | ("shm", name, size)])``
Encoded = tuple[bytes, list[Any]]


def _shared_memory(name: str | None = None, size: int = 0) -> SharedMemory:
    """Create (``name`` omitted) or open a segment.

    Workers share the GUI process's resource tracker, which holds segment names as a set:
    the worker's creation registers the name, and ``unlink`` in the GUI process removes it.
    A segment whose result never arrives is unlinked by the tracker at exit.
    """
    if name is None:
        return SharedMemory(create=True, size=size)
    return SharedMemory(name=name)


def encode(obj: Any, *, shared_memory: bool = True) -> Encoded:
    """Pickle ``obj`` (cloudpickle, protocol 5) with its large buffers out of band."""
    buffers: list[pickle.PickleBuffer] = []
    main = cloudpickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    parts: list[Any] = []
    for buffer in buffers:
        raw = buffer.raw()
        if shared_memory and raw.nbytes >= SHARED_MEMORY_THRESHOLD:
            shm = _shared_memory(size=raw.nbytes)
            try:
                target = shm.buf
                assert target is not None
                target[: raw.nbytes] = raw
                parts.append(("shm", shm.name, raw.nbytes))
            finally:
                shm.close()
        else:
            parts.append(raw.tobytes())
    return main, parts


def decode(encoded: Encoded) -> Any:
    """Rebuild what :func:`encode` made; shared-memory segments are unlinked here."""
    main, parts = encoded
    buffers: list[Any] = []
    try:
        for part in parts:
            if isinstance(part, tuple):
                buffers.append(_map_and_unlink(part[1], part[2]))
            else:
                buffers.append(part)
    finally:
        for part in parts[len(buffers) :]:  # a failure above must not leak the rest
            if isinstance(part, tuple):
                _unlink_quietly(part[1])
    return pickle.loads(main, buffers=buffers)


def _map_and_unlink(name: str, size: int) -> Any:
    shm = _shared_memory(name=name)
    try:
        fd = getattr(shm, "_fd", -1)
        if fd >= 0:  # POSIX: a mapping of our own outlives the segment's name and fd
            view: Any = memoryview(mmap.mmap(fd, size))
        else:  # Windows: the segment lives while a handle is open, so copy it out
            source = shm.buf
            assert source is not None
            view = bytearray(source[:size])
    finally:
        shm.close()
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
    return view


def _unlink_quietly(name: str) -> None:
    try:
        shm = _shared_memory(name=name)
    except FileNotFoundError:
        return
    shm.close()
    shm.unlink()
