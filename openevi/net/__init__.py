"""Outbound network access to tenant-supplied URLs (policy and guarded clients)."""
