"""The compiled datapath, as the rest of the package sees it: the one module that imports
the cffi extension (``ministack._native``), as pynacl's ``nacl.bindings`` is for libsodium.

``ffi`` and ``lib`` are the extension's own; the helpers turn its conventions (negative
errno returns, timeouts in milliseconds) into Python's.

>>> from ministack.binding import lib, strerror
>>> lib.MS_BATCH > 0, strerror(-2)
(True, 'No such file or directory')
"""
from __future__ import annotations

import os

from ministack._native import ffi, lib

__all__ = ["ffi", "lib", "strerror", "timeout_ms"]

# The steering program is compiled into the package at install time; the C loader
# (bpf_steer.c) reads where from $MINISTACK_STEER_OBJ, unless someone set it already.
os.environ.setdefault("MINISTACK_STEER_OBJ",
                      os.path.join(os.path.dirname(__file__), "ministack_steer.bpf.o"))


def strerror(rc: int) -> str:
    """The message of a C call's negative errno return (anything else as a number).

    >>> strerror(5)
    '5'
    """
    return os.strerror(-rc) if rc < 0 else str(rc)


def timeout_ms(timeout: float | None) -> int:
    """A timeout in seconds (None: wait forever) as the C calls take it.

    >>> timeout_ms(0.25), timeout_ms(None)
    (250, -1)
    """
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds or None (wait forever), not {timeout}")
    return int(timeout * 1000)
