"""rtctl: operate and test Pusher-protocol realtime deployments (Soketi today, Pusher tomorrow)."""

__version__ = "0.1.0"
