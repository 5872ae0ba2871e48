"""storage_lock: one holder at a time per storage and name (SQLite here; PostgreSQL in
test_workers.py)."""

from __future__ import annotations

import pytest

from nas_mnist.study.locks import storage_lock


def test_sqlite_lock_excludes_a_second_holder_until_released(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with storage_lock(url, "seed:demo"):
        with pytest.raises(TimeoutError, match="not acquired"):
            with storage_lock(url, "seed:demo", timeout=0.3):
                pass
    with storage_lock(url, "seed:demo", timeout=0.3):
        pass
