"""Remove passwords (and tokens) from text before it reaches a log, an error, a status
or an Event: the one `redact` every message that may quote a URL or a DSN goes
through (db.connect re-exports it; the LLM log filter applies it too).

It takes the password out of every form libpq (and people) write one in, and keeps the
rest readable (scheme, user, host, port, database, other parameters):
- URL userinfo, percent-encoded or pasted raw: `postgresql://u:p%2Fw@h/db`,
  `postgresql://u:p/w x@y@h/db`. A raw password may hold '/', '@', ':', '?', '#' and
  spaces, so everything from the first ':' after the user to the LAST '@' on the line
  goes. A line with two URLs thus loses the first one's host as well; a line break
  ends the search (no URL holds a raw one).
- URL query parameters: `?password=secret`, `&sslpassword=...`, `&access_token=...`:
  the value up to the next '&', '#' or the end of the line (a raw value may hold
  spaces, so whitespace does not end it).
- key=value text: libpq DSNs `host=h password='a b' dbname=d` (quoted with \\' and
  \\\\ escapes, or unquoted with backslash escapes), `PGPASSWORD=...`, Python reprs
  `password='...'` and JSON `"password": "..."`.
Over-redaction is the accepted failure: a stray '@' later on the line, or a word after
`token=`, is masked too. Pure text, no I/O; works on malformed URLs.
"""

from __future__ import annotations

import re

MASK = "***"
# Keys whose value is a secret: libpq's password/sslpassword, PGPASSWORD, DB_PASSWORD,
# access_token, client_secret, api_key ...
_KEY = r"[A-Za-z0-9_]*(?:password|passwd|secret|token|api_?key)"

# scheme://user:<password>@ - greedy to the last '@' of the line (see above).
_USERINFO = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*):[^\r\n]*@", re.I)
# ?key=<value> / &key=<value> in a URL's query.
_QUERY = re.compile(rf"(?P<head>[?&]{_KEY}=)[^&#\r\n]*", re.I)
# key=<value> (libpq DSN, environment, repr) or "key": <value> (JSON). Not after '?',
# '&' or a word character: query parameters are _QUERY's, and `max_tokens=` is no key.
_KEY_VALUE = re.compile(
    rf"""(?P<head>(?<![?&\w])(?:{_KEY}\s*=|(?P<q>['"]){_KEY}(?P=q)\s*:)\s*)
         (?:'(?:[^'\\\r\n]|\\.)*'?      # single-quoted (libpq, repr), maybe cut short
           |"(?:[^"\\\r\n]|\\.)*"?      # double-quoted (JSON, repr)
           |(?:\\.|[^\s\\'"])(?:\\.|[^\s\\])*)  # unquoted: to whitespace, \\ escapes
    """,
    re.I | re.X,
)


def redact(text: str) -> str:
    """`text` (a URL, a DSN, or a message quoting them) with every password and token
    replaced by ***, the host and database left readable."""
    # Query values first: a raw one may hold '@', which _USERINFO would take for the
    # end of a password and leave the rest of the value behind.
    out = _QUERY.sub(lambda m: f"{m['head']}{MASK}", text)
    out = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", out)
    return _KEY_VALUE.sub(lambda m: f"{m['head']}{MASK}", out)
