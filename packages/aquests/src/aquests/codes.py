"""Synthetic status codes for failures below HTTP (inventory AQ-14).

A network-level failure never raises into the caller's loop: it becomes a response whose
``status_code`` is one of these. Skitai treats ``code >= 700`` as "exception" (result status 2).
"""

TIMEOUT = 730            # no answer within the timeout
REQUEST_FAILED = 731     # generic failure (also: the request could not be built)
CONNECTION_REFUSED = 732
DNS_FAILED = 733
TLS_FAILED = 734
PROTOCOL_ERROR = 735     # malformed or oversized response, bad frame, bad gRPC framing
CONNECTION_CLOSED = 736  # the peer closed before the response was complete
DB_ERROR = 740           # the database answered with an error (see expt_class / expt_str)

REASONS = {
    TIMEOUT: "Timeout",
    REQUEST_FAILED: "Request Failed",
    CONNECTION_REFUSED: "Connection Refused",
    DNS_FAILED: "DNS Lookup Failed",
    TLS_FAILED: "TLS Handshake Failed",
    PROTOCOL_ERROR: "Protocol Error",
    CONNECTION_CLOSED: "Connection Closed",
    DB_ERROR: "Database Error",
}


def is_failure(code: int) -> bool:
    return code >= 700
