"""Preprocessing helpers (graph construction lives here as methods need it)."""

__all__: list[str] = []
