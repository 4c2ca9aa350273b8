"""Named groups of equivalent servers: load balancing, fail-over and map (SK-42, SK-43, SK-51).

The cluster does not speak any protocol. Callers hand it ``do(member)``, a coroutine function that
sends one request to one member and returns a response; the cluster picks the member, counts the
request in flight, retries connection-level failures on other members and marks failing members
dead for a while. The server's ``was`` services and the standalone API share this code.

State is guarded by one ``threading.Lock`` (never held across an ``await``), so worker threads
may read ``status()`` or change members while the loop sends requests.
"""
from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from . import codes
from .members import Member, is_db, normalize_ctype, parse_member, parse_members, ssl_implied

Do = Callable[[Member], Awaitable[Any]]

DEAD_BACKOFF = 60.0          # seconds a failed member is skipped
LONG_DEAD_BACKOFF = 600.0    # ... after LONG_DEAD_AFTER consecutive failures
LONG_DEAD_AFTER = 10


def is_connection_failure(response: Any) -> bool:
    """True when ``response`` failed below the application: a 7xx code other than a DB error.

    HTTP 5xx answers and database errors (740) came from a working member and are not retried.
    """
    code = getattr(response, "status_code", None)
    return isinstance(code, int) and code >= 700 and code != codes.DB_ERROR


def _failed(code: int, reason: str) -> Any:
    from .response import Response

    return Response.failed(code, reason)


def _most_spare(pool: list[Member]) -> Member:
    """The member with the most spare capacity (``1 - inflight/weight``).

    Ties are broken at random in proportion to weight, so that light traffic (nothing in flight)
    is also spread by weight instead of always going to the heaviest member.
    """
    spare = {id(m): 1.0 - m.inflight / m.weight for m in pool}
    top = max(spare.values())
    tied = [m for m in pool if spare[id(m)] >= top - 1e-9]
    if len(tied) == 1:
        return tied[0]
    return random.choices(tied, weights=[m.weight for m in tied])[0]


class Cluster:
    """A named cluster of members (``Cluster("mysearch", "https", ["s1:443", "s2:443 2"])``)."""

    def __init__(self, name: str, ctype: str, members: str | list[str], role: str = "", source: str = "",
                 ssl: bool = False, *, backoff: float = DEAD_BACKOFF, long_backoff: float = LONG_DEAD_BACKOFF,
                 long_after: int = LONG_DEAD_AFTER) -> None:
        if not isinstance(name, str) or not name.lstrip("@") or "/" in name:
            raise ValueError(f"cluster name must be a non-empty string without '/', not {name!r}")
        if backoff < 0 or long_backoff < 0 or long_after < 1:
            raise ValueError("backoff and long_backoff must be >= 0 seconds and long_after >= 1")
        self.name = name.lstrip("@")
        self.ctype = normalize_ctype(ctype)
        self.ssl = bool(ssl) or ssl_implied(self.ctype)
        self.role = role or ""
        self.source = source or ""
        self.backoff = float(backoff)
        self.long_backoff = float(long_backoff)
        self.long_after = int(long_after)
        self._lock = threading.Lock()
        self._members: list[Member] = parse_members(members, self.ctype, self.ssl)

    def __repr__(self) -> str:
        return f"<Cluster @{self.name} {self.ctype} members={len(self._members)}>"

    def __len__(self) -> int:
        return len(self._members)

    @property
    def is_db(self) -> bool:
        return is_db(self.ctype)

    @property
    def roles(self) -> tuple[str, ...]:
        """The ``role`` argument split on commas (the gateway's access policy)."""
        return tuple(r.strip() for r in self.role.split(",") if r.strip())

    @property
    def members(self) -> list[Member]:
        with self._lock:
            return list(self._members)

    # -- choosing ----------------------------------------------------------------------------------
    def choose(self, exclude: set[str] | frozenset[str] = frozenset()) -> Member | None:
        """Pick the member with the most spare capacity and count one request in flight on it.

        Members that are alive come first; dead ones are tried only when no live member is left
        (SK-42: if every member is dead, all are tried). A member whose back-off is over gets one
        probe request at a time until it answers. Stopped and excluded members are never used.
        The caller must :meth:`release` the member when its request is over.
        """
        now = time.monotonic()
        with self._lock:
            usable = [m for m in self._members if not m.stopped and m.address not in exclude]
            live = [m for m in usable if m.retry_at <= now and (m.fails == 0 or m.inflight == 0)]
            pool = live or usable
            if not pool:
                return None
            best = _most_spare(pool)
            best.inflight += 1
            best.requests += 1
            return best

    def release(self, member: Member) -> None:
        with self._lock:
            if member.inflight > 0:
                member.inflight -= 1

    def report(self, member: Member, ok: bool, reason: str = "") -> None:
        """Record how a request to ``member`` went; failures mark it dead for a back-off period."""
        with self._lock:
            if ok:
                member.fails = 0
                member.retry_at = 0.0
                return
            member.failures += 1
            member.fails += 1
            member.deadtotal += 1
            member.last_error = reason
            wait = self.long_backoff if member.fails >= self.long_after else self.backoff
            member.retry_at = time.monotonic() + wait

    def live_members(self) -> list[Member]:
        """Members a map call goes to: the live ones, or every running one if all are dead."""
        now = time.monotonic()
        with self._lock:
            usable = [m for m in self._members if not m.stopped]
            return [m for m in usable if m.retry_at <= now] or usable

    # -- sending -----------------------------------------------------------------------------------
    async def _attempt(self, do: Do, member: Member) -> Any:
        try:
            resp = await do(member)
        except (TimeoutError, asyncio.TimeoutError):
            resp = _failed(codes.TIMEOUT, f"no answer from {member.address} in time")
        except ConnectionRefusedError as e:
            resp = _failed(codes.CONNECTION_REFUSED, f"{member.address}: {e}")
        except OSError as e:
            resp = _failed(codes.REQUEST_FAILED, f"{member.address}: {e}")
        meta = getattr(resp, "meta", None)
        if isinstance(meta, dict):
            meta.setdefault("node", member.address)
        return resp

    async def _one(self, do: Do, member: Member) -> Any:
        try:
            resp = await self._attempt(do, member)
        finally:
            self.release(member)
        failed = is_connection_failure(resp)
        self.report(member, not failed, getattr(resp, "reason", "") if failed else "")
        return resp

    def candidates(self, attempts: int | None = None) -> Iterator[Member]:
        """Members to try in turn for one request: each chosen as ``choose`` does, none twice.

        Each yielded member counts as in flight until ``release``; at most ``attempts`` are yielded
        (default: every member once).
        """
        tried: set[str] = set()
        for _ in range(attempts or max(1, len(self._members))):
            member = self.choose(tried)
            if member is None:
                return
            tried.add(member.address)
            yield member

    async def call(self, do: Do, *, attempts: int | None = None) -> Any:
        """Send through one member; on a connection-level failure try another (SK-43).

        At most ``attempts`` members are tried (default: every member once). The last failure is
        returned when all fail; a cluster with no usable member gives a 731 response.
        """
        last = None
        for member in self.candidates(attempts):
            last = await self._one(do, member)
            if not is_connection_failure(last):
                return last
        if last is None:
            return _failed(codes.REQUEST_FAILED, f"cluster @{self.name} has no member to send to")
        return last

    async def map(self, do: Do) -> list[Any]:
        """Send the same request to every live member at once; results in member order (SK-51)."""
        targets = self.live_members()
        with self._lock:
            for m in targets:
                m.inflight += 1
                m.requests += 1
        return list(await asyncio.gather(*(self._one(do, m) for m in targets)))

    # -- runtime control ---------------------------------------------------------------------------
    def _find(self, member: str | Member) -> Member:
        if isinstance(member, Member):
            address = member.address
        else:
            address = parse_member(member, self.ctype, self.ssl).address
        for m in self._members:
            if m.address == address:
                return m
        raise KeyError(f"cluster @{self.name} has no member {address}")

    def add_member(self, spec: str) -> Member:
        """Add a member (or update the weight of an existing one) while running."""
        new = parse_member(spec, self.ctype, self.ssl)
        with self._lock:
            for m in self._members:
                if m.address == new.address:
                    m.weight = new.weight
                    m.stopped = False
                    return m
            self._members.append(new)
            return new

    def remove_member(self, member: str | Member) -> Member:
        """Take a member out; requests already in flight to it finish normally."""
        with self._lock:
            m = self._find(member)
            self._members.remove(m)
            return m

    def stop_member(self, member: str | Member, stop: bool = True) -> Member:
        """Stop sending to a member (``stop=False`` resumes it) without forgetting its stats."""
        with self._lock:
            m = self._find(member)
            m.stopped = bool(stop)
            return m

    def revive(self, member: str | Member) -> Member:
        """Forget a member's failures so it is chosen again at once."""
        with self._lock:
            m = self._find(member)
            m.fails, m.retry_at = 0, 0.0
            return m

    def status(self) -> dict[str, Any]:
        """A snapshot for the status page (safe to call from any thread)."""
        now = time.monotonic()
        with self._lock:
            members = [{
                "address": m.address, "weight": m.weight, "inflight": m.inflight,
                "requests": m.requests, "failures": m.failures, "fails": m.fails,
                "deadtotal": m.deadtotal, "stopped": m.stopped,
                "dead": m.retry_at > now, "retry_in": round(max(0.0, m.retry_at - now), 1),
                "last_error": m.last_error,
            } for m in self._members]
        return {"name": self.name, "ctype": self.ctype, "ssl": self.ssl, "members": members,
                "live": sum(1 for m in members if not m["dead"] and not m["stopped"])}
