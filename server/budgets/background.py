"""Sending at a lower priority than the tools: the contact index's sync shares the tools' budgets this way.

(Interface only; `Background` is being written.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager

from .base import Budget


class Priority(ABC):
    """How a request that is not a tool call's takes its slot of a budget."""

    @abstractmethod
    def slot(self, budget: Budget) -> AbstractAsyncContextManager[None]:
        """Wait, for as long as it takes, for the right to send one request on `budget`; hold it while it runs."""
