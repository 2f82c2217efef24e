"""Fixtures shared by every test directory. Keep this minimal; each area has its own conftest."""

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run `@pytest.mark.anyio` tests on asyncio."""
    return "asyncio"
