"""The order in which a child tries its queues on each claim.

Equal weights rotate the first queue every claim (fair); unequal weights draw a weighted random
order without replacement, so a queue of weight 3 comes first about three times as often as a
queue of weight 1, and an empty heavy queue never starves a light one (the claim moves on).
"""

from __future__ import annotations

import random
from collections.abc import Mapping


class QueueOrder:
    def __init__(self, weights: Mapping[str, int]) -> None:
        if not weights:
            raise ValueError("a child needs at least one queue")
        self.names = list(weights)
        self.weights = [weights[name] for name in self.names]
        self.weighted = len(set(self.weights)) > 1
        self._turn = random.randrange(len(self.names))

    def next(self) -> list[str]:
        if self.weighted:
            return _weighted_order(self.names, self.weights)
        self._turn = (self._turn + 1) % len(self.names)
        return self.names[self._turn :] + self.names[: self._turn]


def _weighted_order(names: list[str], weights: list[int]) -> list[str]:
    # Efraimidis-Spirakis: sort by u^(1/w), a weighted sample without replacement.
    keys = [random.random() ** (1.0 / w) for w in weights]
    return [name for _, name in sorted(zip(keys, names, strict=True), reverse=True)]
