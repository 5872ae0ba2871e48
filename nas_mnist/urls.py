"""SQLite URLs, the one place that reads them: Optuna storages and MLflow stores both use
SQLAlchemy's ``sqlite:///FILE`` form."""

from __future__ import annotations

from pathlib import Path

from nas_mnist.errors import InputError


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///FILE`` URL; None for other schemes, unparsable URLs
    and in-memory databases."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def require_existing_sqlite(url: str, what: str, flag: str) -> None:
    """Refuse a SQLite URL whose file does not exist: opening it would create an empty one.

    Args:
        url: a storage or tracking URL (other schemes pass).
        what: what it is, for the message ("study storage", "MLflow tracking store").
        flag: the flag that gave it ("--storage").

    Raises:
        InputError: the file does not exist.
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise InputError(
            f"the {what} {url!r} does not exist ({path.resolve()}); run from the folder the "
            f"search ran in, or pass {flag} with the right path"
        )
