"""Runs in the launcher before run(): turns simple user settings into the app's configuration."""
import skitai


def bootstrap(pref):
    if pref.config.get("enable_cron"):
        from . import cronjob
        skitai.cron("*/10 * * * *", cronjob.__file__)

    with open(pref.config.urlfile) as f:
        pref.config.urllist = [line.strip().split("\t", 4) for line in f if line.strip()]
