"""HTTP/1.1 and HTTP/2 client machinery (one idea per module; the entry point is :mod:`.client`)."""
