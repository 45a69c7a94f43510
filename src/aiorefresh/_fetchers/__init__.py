"""Fetchers: each produces one fresh set of credentials per call (``async def __call__``)."""

from __future__ import annotations

from .custom import CustomFetcher

__all__ = ["CustomFetcher"]
