"""WebSocket (RFC 6455 on wsproto): the handshake, the connection, the spec's designs and the WSGI side."""
from . import speedups  # noqa: F401  (wsproto's unmasking in C when wsaccel is installed)
