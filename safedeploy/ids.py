"""Identifiers minted on the request path: request ids, Lambda request ids, capture event ids.

``uuid.uuid4()`` reads the kernel's random source on every call (a syscall) and builds a ``UUID`` object;
the request path needs several per request and only their uniqueness, not secrecy. These come from the
``random`` module's generator, which Python reseeds in every forked child, formatted as version-4 UUIDs.
"""

from __future__ import annotations

import random

_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def random_uuid() -> str:
    """A random version-4 UUID in its canonical 36-character form (unique, not unpredictable)."""
    value = (random.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
