"""Group-chat rooms and the broker that carries their messages.

``LocalBroker`` keeps rooms in this process (the spec's behaviour). The interface is small on purpose —
``room(key)`` and ``Room.join/leave/publish`` — so a Redis pub/sub broker can subclass ``Room`` and
fan a published message out to the same room in other worker processes.
"""
from __future__ import annotations

import threading
from typing import Any


class Room:
    """The clients of one room by id; ``publish`` sends to one of them or to all."""

    def __init__(self, broker: LocalBroker, key: str) -> None:
        self.broker, self.key = broker, key
        self._clients: dict[int, Any] = {}
        self._lock = threading.Lock()

    @property
    def clients(self) -> dict[int, Any]:
        """A copy, safe to iterate from any thread."""
        with self._lock:
            return dict(self._clients)

    def leave(self, sender: Any) -> None:
        self.broker.leave(self, sender)

    def publish(self, data: str | bytes, client_id: int | None = None) -> None:
        """Deliver encoded ``data`` to ``client_id``, or to every client when it is None; never waits for
        a slow reader (it would stall the whole room), see ``Sender.deliver``."""
        with self._lock:
            targets = list(self._clients.values()) if client_id is None else \
                [c for c in (self._clients.get(client_id),) if c is not None]
        for sender in targets:
            sender.deliver(data, False)


class LocalBroker:
    """Rooms of this process by key (route path + "/" + the room argument)."""

    room_class = Room

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self._lock = threading.Lock()

    def join(self, key: str, sender: Any) -> Room:
        """Add ``sender`` to the room ``key``; the first client opens the room."""
        with self._lock:
            room = self.rooms.get(key)
            if room is None:
                room = self.rooms[key] = self.room_class(self, key)
            with room._lock:
                room._clients[sender.client_id] = sender
            return room

    def leave(self, room: Room, sender: Any) -> None:
        """Remove ``sender``; when the last client leaves, the room closes."""
        with self._lock:
            with room._lock:
                room._clients.pop(sender.client_id, None)
                empty = not room._clients
            if empty and self.rooms.get(room.key) is room:
                del self.rooms[room.key]
