"""Distributed rendering: the shard driver, its render workers and executors (local, Ray), the manifest, progress."""
