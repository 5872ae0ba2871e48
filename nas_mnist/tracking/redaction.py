"""URIs without their password, to show or record: ``redact_uri`` (``nas:***@host``).

A storage or tracking URI can hold a password (``postgresql://USER:PASSWORD@HOST/DB``). Whatever
nas-mnist prints, logs or records (the study's attributes, MLflow params, a child process's
command line, which ``ps`` shows) goes through ``redact_uri``; neither the MLflow UI nor
optuna-dashboard has a login. The password itself goes only to the store, and to child processes
by environment.
"""

from __future__ import annotations

import re

REDACTED = "***"
"""What a password becomes in a URI that is shown or recorded (SQLAlchemy's
``render_as_string(hide_password=True)`` writes the same)."""

_USER_PASSWORD = re.compile(
    r"^(?P<head>[A-Za-z][\w+.\-]*://[^:/@?#]*):(?P<password>.*)@(?=[^@]*$)")
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


def redact_uri(uri: str | None) -> str | None:
    """``uri`` with its password replaced by ``***``, to show or record (print, log, MLflow
    params, study attributes, another process's command line).

    ``postgresql+psycopg://nas:secret@host/db`` becomes ``postgresql+psycopg://nas:***@host/db``
    (the user name stays), ``http://u:p@host:5000`` becomes ``http://u:***@host:5000`` and a
    ``password=`` query parameter is hidden too. The password runs to the last ``@`` of the URI,
    so one with an unencoded ``@`` is hidden whole. URIs without a password, and None, come back
    unchanged; redacting twice changes nothing.
    """
    if not uri:
        return uri
    redacted = _USER_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", uri, count=1)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['key']}{REDACTED}", redacted)


def is_redacted(uri: str | None) -> bool:
    """Whether ``uri`` is one that ``redact_uri`` hid a password in (so it cannot be opened)."""
    if not uri:
        return False
    match = _USER_PASSWORD.match(uri)
    return (match is not None and match["password"] == REDACTED) or (
        f"password={REDACTED}" in uri.lower())


def hide_password(text: str, uri: str | None) -> str:
    """``text`` (an error message about ``uri``) with ``uri``'s password replaced by ``***``
    wherever it appears, and ``uri`` itself redacted (``redact_uri``)."""
    if not uri or redact_uri(uri) == uri:
        return text
    match = _USER_PASSWORD.match(uri)
    text = text.replace(uri, redact_uri(uri))
    if match is not None and match["password"]:
        text = text.replace(match["password"], REDACTED)
    return text
