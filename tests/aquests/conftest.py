"""Shared fixtures for the aquests tests: real PostgreSQL, Redis and MongoDB-wire servers.

The servers are session-scoped and defined in tests/support/services.py (so other conftests can
re-export them); a missing binary skips the tests that need it with the reason.
"""
import pytest

from aquests.dbapi.pool import close_all
from tests.support.services import mongo_server, pg_server, postgres_dsn, redis_server  # noqa: F401


@pytest.fixture
async def close_pools():
    """Close the test loop's DB pools when the test ends (for async tests)."""
    yield
    await close_all()

# HTTP test servers (owner: aquests-http; defined in tests/aquests/http_support.py)
from .http_support import app, h2c, h2tls, tls_app  # noqa: E402, F401
