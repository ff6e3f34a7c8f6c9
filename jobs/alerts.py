"""Periodic alert check (SPEC §9), enqueued by the clock every 60 s."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def check_all() -> dict:
    """Evaluate every practice's alert conditions; mail new episodes, clear ended ones."""
    from webapp.alerts import check_all as check

    results = check()
    raised = sum(len(r["raised"]) for r in results.values())
    cleared = sum(len(r["cleared"]) for r in results.values())
    if raised or cleared:
        logger.info("alerts: %s raised, %s cleared", raised, cleared)
    return {str(k): v for k, v in results.items()}
