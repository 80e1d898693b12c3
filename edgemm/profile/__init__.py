"""Measuring bundles: per-stage latency, memory and per-layer times (``edgemm profile``)."""

from edgemm.profile.latency import ProfileConfig, ProfileReport, profile, to_markdown
from edgemm.profile.stats import LatencyStats

__all__ = ["LatencyStats", "ProfileConfig", "ProfileReport", "profile", "to_markdown"]
