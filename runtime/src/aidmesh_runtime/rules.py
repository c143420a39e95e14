"""The one exception every service's domain rules refuse with (no I/O here: a domain module
may import it and stay pure).

Subclass it for a service's rule errors (`class ShelterRuleError(ValueError, RuleRefused)`).
In an event handler the runtime dead-letters the event with the rule's reason, as a refusal:
never retried, never logged as a crash (consumer.py). The HTTP API answers it with the 4xx
its service maps it to.
"""

from __future__ import annotations


class RuleRefused(Exception):
    """A domain rule refuses what was asked."""
