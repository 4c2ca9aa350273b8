"""A batch job the bootstrap can schedule with skitai.cron() (when pref.config.enable_cron is set)."""
print("unsub cron job ran")
