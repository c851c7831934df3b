"""Fixtures shared by the harness's own tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

import harness.tasks
from harness import registry


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Registrations, plugin imports and task instances made by the test are undone afterwards."""
    registry.names("family")  # the built-ins, before the snapshot
    entries = {kind: dict(found) for kind, found in registry._entries.items()}
    sources, loaded, tasks, modules = dict(registry._sources), set(registry._loaded), set(harness.tasks._TASKS), \
        set(sys.modules)
    yield
    for kind, found in registry._entries.items():
        found.clear()
        found.update(entries[kind])
    registry._sources.clear()
    registry._sources.update(sources)
    registry._loaded.clear()
    registry._loaded.update(loaded)
    for key in set(harness.tasks._TASKS) - tasks:
        del harness.tasks._TASKS[key]
    for name in set(sys.modules) - modules:
        if name.startswith(registry._PATH_PREFIX):
            del sys.modules[name]
