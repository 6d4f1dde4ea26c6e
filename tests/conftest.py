import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """One environment store for the session, so instances of one dependency set share a build."""
    return tmp_path_factory.mktemp("store")
