"""WebSocket (RFC 6455 on wsproto): the handshake, the connection, the spec's designs and the WSGI side."""
