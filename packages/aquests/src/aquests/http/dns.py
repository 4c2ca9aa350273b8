"""Non-blocking host lookups with a small TTL cache (inventory AQ-20)."""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

TTL = 60.0          # seconds a lookup result is reused
MAX_ENTRIES = 1024  # cache bound

_cache: dict[tuple[str, int], tuple[float, list[tuple]]] = {}


async def resolve(host: str, port: int) -> list[tuple]:
    """``getaddrinfo`` results for host:port (TCP), cached for :data:`TTL` seconds."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [(fam, socket.SOCK_STREAM, 6, "", (host, port))]
    key = (host, port)
    hit = _cache.get(key)
    now = time.monotonic()
    if hit and hit[0] > now:
        return hit[1]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise socket.gaierror(socket.EAI_NONAME, f"no address for {host}")
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    _cache[key] = (now + TTL, infos)
    return infos
