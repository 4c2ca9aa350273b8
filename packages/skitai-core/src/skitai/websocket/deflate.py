"""permessage-deflate (RFC 7692) as wsproto does it, with one hook fixed for wsproto 1.3."""
from __future__ import annotations

from typing import Any

from wsproto.extensions import PerMessageDeflate


class InterleavedDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, except for a control frame between the fragments of a compressed
    message (RFC 6455 5.4 allows them there): wsproto ends the message's compressed state at that frame,
    so the rest of the message was read as plain bytes and a valid client was closed with 1007."""

    def frame_inbound_complete(self, proto: Any, fin: bool) -> Any:
        if self._inbound_compressed and not self._inbound_is_compressible:   # a control frame mid-message
            return None
        return super().frame_inbound_complete(proto, fin)
