"""Fixtures shared by every test directory. Keep this minimal; each area has its own conftest."""

import os

import pytest


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than CPUs, as most tests wait on I/O rather than compute."""
    del config
    return (os.cpu_count() or 1) + 1


@pytest.fixture
def anyio_backend() -> str:
    """Run `@pytest.mark.anyio` tests on asyncio."""
    return "asyncio"
