"""Small helpers that ride along with aquests (``aquests.lib.jwt``)."""
