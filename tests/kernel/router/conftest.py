"""Router rigs against the in-process simulator, shared by the router test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .rig import RouterRig, running_rig


@pytest.fixture
async def rig() -> AsyncIterator[RouterRig]:
    async for r in running_rig():
        yield r


@pytest.fixture
async def partial_rig() -> AsyncIterator[RouterRig]:
    async for r in running_rig(partial_fill_probability=1.0):
        yield r


@pytest.fixture
async def latent_rig() -> AsyncIterator[RouterRig]:
    async for r in running_rig(fill_latency_ms=2_000):
        yield r
