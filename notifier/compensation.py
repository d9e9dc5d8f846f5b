"""The compensation policy: what an incident earns its audience, and the cap on it.

Owns reading ``[compensation]`` rules (severity × duration -> days of free service) and
checking an override against the cap. It does not word the offer: templates do.
"""

from __future__ import annotations

import re
from datetime import timedelta

from notifier.config import CompensationSection
from notifier.errors import UsageError


def by_policy(policy: CompensationSection, severity: str, duration: timedelta) -> int | None:
    """The most generous rule that applies, never above the cap; None when none applies."""
    days = [r.days for r in policy.rules if r.severity == severity and duration >= r.min_duration]
    if not days:
        return None
    return min(max(days), policy.cap_days) or None


def parse_override(policy: CompensationSection, text: str) -> int | None:
    """``--compensation 14`` / ``14d`` / ``none`` -> days, refused above the cap."""
    value = text.strip().lower()
    if value in {"none", "no", "0", "0d", "нет"}:
        return None
    match = re.fullmatch(r"(\d{1,4})\s*(d|days?|дн(?:я|ей)?)?", value)
    if not match:
        raise UsageError(f"--compensation: {text!r} is not a number of free days such as '14d' (or 'none')")
    days = int(match.group(1))
    if days > policy.cap_days:
        raise UsageError(
            f"--compensation: {days} days is above the policy cap of {policy.cap_days} days "
            "([compensation].cap_days)"
        )
    return days
