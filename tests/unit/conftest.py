from __future__ import annotations

from collections.abc import Iterator

import pytest

from oqron import Container, OqronKit, define_config


@pytest.fixture
def kit() -> Iterator[Container]:
    """oqron on the memory adapters, fresh for each test."""
    yield OqronKit.init(define_config(storage="memory://", broker="memory://", lock="memory://"))
    OqronKit.stop()
