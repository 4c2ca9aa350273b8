"""SMTP delivery agent and cron agent for Skitai (built in a later issue)."""

__version__ = "1.0.0.dev0"
