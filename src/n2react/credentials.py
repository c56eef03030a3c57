"""A password in a URI (``http://alice:secret@host:5000``, ``postgresql://u:p@db/mlflow``) hidden
from what n2react writes or prints: tags, the run folder's files, links, log and error lines.

The URI itself is used as given; :func:`redact` only changes what is shown. MLflow reads
credentials from ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` too, which keeps
them off the command line (and out of Hydra's own ``.hydra/`` files) altogether.
"""

from __future__ import annotations

import logging
import re

#: ``scheme://user:password@``: the password is what lies between the user's colon and the @.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^/\s@]*@")


def redact(text: str) -> str:
    """``text`` with each URI's password shown as ``***`` (``http://alice:***@host``)."""
    return _USERINFO.sub(r"\g<head>:***@", text)


class RedactCredentials(logging.Filter):
    """A log handler's filter: a record whose message holds a URI's password is shown with
    ``***`` instead (on the terminal and in the run's log file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = redact(message)
        if shown != message:
            record.msg, record.args = shown, None
        return True
