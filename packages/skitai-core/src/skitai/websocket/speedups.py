"""wsproto's payload unmasking in C, when wsaccel is installed.

Every frame a client sends is masked (RFC 6455 5.3), so the server XORs every payload byte with a 4-byte
key. wsproto does it in Python, about a tenth of a small message's whole cost here (callgrind, in-process
echo: 128.6k instructions per message with wsproto's masker, 116.2k with wsaccel's). wsaccel's masker
(the one Autobahn uses) is a drop-in: same constructor, same ``process`` that carries the key's position
over from one call to the next. wsproto still parses and checks every frame; only the XOR moves to C.

wsproto looks the masker up by its module-level name when it parses a frame header, so replacing that name
is the only way in (for every user of wsproto in the process, which only gains: the output is the same).
Without wsaccel (another Python, a platform with no wheel and no compiler) nothing changes.
"""
from __future__ import annotations

import wsproto.frame_protocol as _frames

try:
    from wsaccel.xormask import XorMaskerSimple as _CMasker
except ImportError:            # optional: wsproto's own masker stays
    _CMasker = None

PURE_MASKER = _frames.XorMaskerSimple
ACTIVE = _CMasker is not None
if ACTIVE:
    _frames.XorMaskerSimple = _CMasker
