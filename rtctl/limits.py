"""Bounds shared by every part of rtctl (the CLI's options, the listen loop, the pytest plugin)."""

# The longest wait anything accepts: beyond it the platform's timers overflow (threading and select
# raise OverflowError), and nobody waits longer than 30 days anyway.
MAX_WAIT_SECONDS = 30 * 24 * 3600.0
