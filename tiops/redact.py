"""Keeping secrets out of everything tiops writes: messages, crash logs, plans, reports.

Every secret tiops reads (a token, a password, a DSN, all from environment variables)
is registered here the moment it is read, in every form it can travel in (an HTTP
Basic header carries ``base64(user:password)``; a URL carries it percent-encoded; a
Python message quoting a value carries its ``repr``, a JSON text its escaped form).
:func:`redact` replaces each of them, and credentials written inside URLs or connection
strings, with ``***``.

Text that comes from a server (an HTTP reason phrase, a per-object error message) is
never shown as sent: :func:`server_text` redacts it, escapes control characters and
cuts it short, because a hostile or broken server can echo the request's
Authorization header back.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_SECRETS: set[str] = set()
# Shorter values would mask ordinary words in messages; real secrets are longer.
_MIN_SECRET_LENGTH = 4

# user:password@ in a URI (RFC 3986 section 3.2.1 userinfo), with or without a scheme. The
# scheme and user name are bounded: unbounded, every start in a long unbroken run of text (a
# pasted blob echoed in a message) scanned to its end, and a 100k-character argument took
# minutes to redact.
# A password may hold a '/' that RFC 3986 wants percent-encoded: written so by mistake, it is the
# URL a check refuses and quotes, and still a password.
_USERINFO = re.compile(r"(?P<user>(?:[A-Za-z][A-Za-z0-9+.-]{0,31}://)?[^\s:/@'\"]{1,256}):(?P<password>[^\s@'\"]{1,1024})@")
# password=... in a libpq key/value connection string, and Authorization header values. A name
# may be compound (access_token=, client_secret=, x-api-key:, as OAuth and API gateways write
# them): \b alone found no boundary after the '_' of access_token, and the token was shown. The
# prefix is bounded, as _USERINFO is: unbounded, "a-a-a-..." was scanned to its end from every 'a'.
_KEY_VALUE = re.compile(r"(?i)(?P<key>\b(?:[a-z0-9]{1,32}[_-]){0,3}(?:password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*)"
                        r"(?P<value>'[^']*'|\"[^\"]*\"|\S+)")
_AUTHORIZATION = re.compile(r"(?i)\b(?P<scheme>Bearer|Basic)\s+(?P<value>[A-Za-z0-9._~+/=-]{4,})")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SERVER_TEXT_LIMIT = 300


def _written_forms(value: str) -> Iterator[str]:
    """``value`` and the forms text quoting it writes it in.

    A server that redirects to a URL echoing the credentials has them percent-encoded in the
    URL an error message names (a base64 value's ``=`` as ``%3D``); a Python message quoting
    a value (``str`` of a dict, ``{value!r}``) escapes quotes and backslashes; a JSON text
    escapes them its own way. Each of these hid a registered secret from an exact match.
    """
    yield value
    yield quote(value, safe="")
    yield quote(value, safe="/")  # requests and taxii2client leave '/' unescaped in a path
    yield quote_plus(value, safe="")
    yield repr(value)[1:-1]
    yield repr(value + '"')[1:-2]  # the other quote: repr picks ' or " by what the text holds
    yield json.dumps(value)[1:-1]
    yield json.dumps(value, ensure_ascii=False)[1:-1]


def _remember(value: str) -> None:
    _SECRETS.update(form for form in _written_forms(value) if len(form) >= _MIN_SECRET_LENGTH)


def register_secret(value: str | None) -> None:
    """Remember a secret (and the forms it is sent and quoted in) so that :func:`redact` hides it."""
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    _remember(value)
    _remember(base64.b64encode(value.encode("utf-8")).decode("ascii"))


def register_login(user: str | None, password: str | None) -> None:
    """HTTP Basic credentials: the password, and ``base64(user:password)`` as sent (RFC 7617)."""
    register_secret(password)
    if password:
        _remember(base64.b64encode(f"{user or ''}:{password}".encode()).decode("ascii"))


def redact_registered(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``, and nothing else changed.

    For output that quotes content (a plan's field differences show what a server stores),
    where the pattern rules of :func:`redact` could mangle ordinary values.
    """
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_values(value: Any) -> Any:
    """A JSON value (a plan's field differences) with :func:`redact_registered` applied to
    every string in it, keys included; anything else is returned as it is."""
    if isinstance(value, str):
        return redact_registered(value)
    if isinstance(value, dict):
        return {redact_registered(str(key)): redact_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(item) for item in value]
    return value


def redact(text: str) -> str:
    """``text`` with every registered secret and every embedded credential replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    if "@" in text:  # userinfo ends with one
        text = _USERINFO.sub(lambda m: f"{m.group('user')}:{MASK}@", text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group('key')}{MASK}", text)
    return _AUTHORIZATION.sub(lambda m: f"{m.group('scheme')} {MASK}", text)


def server_text(text: object, limit: int = SERVER_TEXT_LIMIT) -> str:
    """Text a server sent, safe to show: redacted, control characters escaped, at most ``limit`` characters."""
    # Only the start is shown: redact what can reach it (a whole secret or credential that
    # starts inside the limit), not megabytes a server may send.
    text = str(text)
    reach = limit + max((len(secret) for secret in _SECRETS), default=0) + 2048
    shown = redact(text[:reach])
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", shown)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def public_url(url: str) -> str:
    """``url`` without its userinfo (RFC 3986 section 3.2.1): how a server is named in what tiops writes
    and shows (a lock, a checkpoint file, a message). Requests still go to ``url``, credentials and all."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def register_url_login(url: str) -> None:
    """Register the password a URL carries (``user:password@``), as :func:`register_login` does."""
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password == "" and parts.username:
        # "token:@host": the user name is the credential (RFC 7617 Basic with an empty password).
        register_secret(parts.username)
        register_secret(unquote(parts.username))
        _remember(base64.b64encode(f"{unquote(parts.username)}:".encode()).decode("ascii"))
    if parts.password:
        register_login(unquote(parts.username or ""), unquote(parts.password))
        register_secret(parts.password)  # as written in the URL, percent-encoded
    elif (written := _USERINFO.match(url)) is not None:
        # "http://alice:S3cret/Pass@host/": urlsplit ends the authority at the '/', so it finds
        # no password; the password is still the user's, and never to be shown.
        register_secret(written.group("password"))
