"""Shared fixtures."""

from __future__ import annotations

import pytest
from tiny import tiny_incident

from tracehound.model import IncidentData


@pytest.fixture
def tiny() -> IncidentData:
    return tiny_incident()
