"""Fixtures shared by the integration tests: the real database servers of tests/support/services.py."""
from tests.support.services import mongo_server, pg_server, postgres_dsn, redis_server  # noqa: F401
