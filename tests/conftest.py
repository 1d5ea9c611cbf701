"""Shared test settings: Hypothesis profiles and the PostgreSQL policy."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# ci: thorough but bounded; dev: quick; deterministic: reproducible runs.
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.register_profile("deterministic", max_examples=80, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
