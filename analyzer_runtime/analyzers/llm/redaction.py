"""Keep the API key out of everything a person can read: logs, item errors, status.

The key only ever lives in the process environment and the SDK client. Errors from
the SDK or a provider may echo it (some providers repeat the Authorization header in
a 401 body), so every message we store or log passes through `Redactor.redact`, and
`install` adds the same filter to the process's logging and uncaught-exception output.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
import types
from typing import Any

from analyzer_runtime.contract.redaction import redact as redact_credentials

MASK = "***"
# Bearer tokens and sk-style keys of any provider, even ones we were not given.
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
)


class Redactor:
    def __init__(self, secret: str | None) -> None:
        self.secret = secret or None

    def redact(self, text: Any) -> str:
        out = str(text)
        if self.secret:
            out = out.replace(self.secret, MASK)
            # A provider may echo a prefix or suffix of the key ("sk-abc...xyz").
            if len(self.secret) >= 16:
                out = out.replace(self.secret[:12], MASK).replace(self.secret[-8:], MASK)
        out = _PATTERNS[0].sub(lambda m: m.group(1) + MASK, out)
        # Passwords in URLs and DSNs too (a database error logged by the shard): this
        # filter is the process's only one once installed.
        return redact_credentials(_PATTERNS[1].sub(MASK, out))


class _RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            return True
        clean = self.redactor.redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, redacted, so the handler prints that instead.
            clean += "\n" + self.redactor.redact(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = clean, None
        return True


_installed: list[Redactor] = []


def quiet_http_loggers() -> None:
    """The SDK's and the HTTP clients' loggers at WARNING: at INFO they log every
    request, at DEBUG they dump them."""
    for name in ("openai", "httpx", "httpcore", "httpx2", "httpcore2"):
        logging.getLogger(name).setLevel(logging.WARNING)


def install(redactor: Redactor) -> None:
    """Redact every log record of this process and any uncaught exception it prints.
    The SDK's and httpx's own loggers are kept at WARNING: at DEBUG they dump requests."""
    if any(r.secret == redactor.secret for r in _installed):
        return
    _installed.append(redactor)
    filt = _RedactingFilter(redactor)
    root = logging.getLogger()
    root.addFilter(filt)
    for handler in root.handlers:
        handler.addFilter(filt)
    quiet_http_loggers()

    def hook(kind: type[BaseException], exc: BaseException, tb: types.TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, exc, tb))
        sys.stderr.write(redactor.redact(text))

    sys.excepthook = hook
