"""openevi: a self-hosted voice AI server, wire-compatible with Hume's EVI."""

__version__ = "0.1.0"
