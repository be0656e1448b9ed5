"""`tiops import taxii`: pull a TAXII 2.1 collection into the repository, incrementally.

Every page of the collection's Get Objects endpoint is followed (TAXII 2.1 section
3.4: ``more`` and ``next``) and the objects go through the same checks and writing as
a STIX bundle import. The server's ``X-TAXII-Date-Added-Last`` header (section 3.4.3)
of the pull is kept in ``intel/<source>/_taxii.json`` and sent as ``added_after``
(section 3.4.2) next time, so a pull fetches only what was added since. Credentials
come from environment variables named in ``tiops.yaml`` (``taxii_credentials``); no
secret is ever written to disk.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson
import requests

from tiops.config import is_http_url, load_config
from tiops.errors import TiopsError, UsageError
from tiops.importers import stix
from tiops.importers.write import ImportReport, import_parsed, source_folder
from tiops.jsontext import DuplicateKey, duplicate_keys
from tiops.outputs import write_whole
from tiops.paging import TaxiiPages
from tiops.progress import Progress, no_progress
from tiops.redact import public_url, redact, register_login, register_url_login, server_text
from tiops.stix import timestamp_key

CHECKPOINT_FILE = "_taxii.json"
DATE_ADDED_LAST = "X-TAXII-Date-Added-Last"
DEFAULT_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def collection_url(api_root: str, collection_id: str) -> str:
    """The collection's URL under an API root (TAXII 2.1 section 5.2: <api-root>/collections/<id>/)."""
    if not is_http_url(api_root):
        raise UsageError(f"{api_root!r} is not an http(s) URL of a TAXII 2.1 API root",
                         hint="Give the API root, e.g. https://taxii.example/api1/.")
    if not collection_id.strip() or "/" in collection_id:
        raise UsageError(f"{collection_id!r} is not a collection id")
    parts = urlsplit(api_root)
    if parts.query or parts.fragment:
        # The collection's path goes after the API root's (section 5.2): after a query it would be
        # part of the query, and the request would go to another URL. The query is not shown: it may
        # hold a token.
        shown = public_url(f"{parts.scheme}://{parts.netloc}{parts.path}")
        raise UsageError(f"the API root {shown} is given with a query or fragment ('?...' or '#...'): a TAXII API root "
                         "is a URL path, the collection's URL goes under it",
                         hint="Give the API root alone, e.g. https://taxii.example/api1/; a token or password goes "
                              "in the environment variables docs/import.md names, never in the URL.")
    return f"{api_root.rstrip('/')}/collections/{collection_id}/"


def credentials_for(root: Path, url: str) -> Credentials | None:
    """The credentials of the longest ``taxii_credentials`` URL prefix matching ``url``, read from the environment."""
    config, _ = load_config(root)
    entries = [entry for entry in config.taxii_credentials if _names(entry["url"], url)]
    if not entries:
        return None
    entry = max(entries, key=lambda item: len(item["url"]))
    values = []
    for key in ("username_env", "password_env"):
        name = entry[key]
        value = os.environ.get(name)
        if value is None:
            raise UsageError(f"environment variable {name} is not set (tiops.yaml names it for {entry['url']})",
                             hint=f"Export {name} before running 'tiops import taxii'.")
        values.append(value)
    register_login(values[0], values[1])
    return Credentials(values[0], values[1])


def _names(prefix: str, url: str) -> bool:
    """Whether the ``taxii_credentials`` entry ``prefix`` is for ``url``: a prefix of it with the same
    scheme and host, and the same port when the entry names one (an entry without a port names the
    host's servers on any port). As text alone, ``https://taxii.partner.example`` is also the start
    of ``https://taxii.partner.example.attacker.net/`` and ``https://taxii.partner.example@attacker.net/``
    (and ``http://host:80`` of ``http://host:8080/``), and the partner's password went there."""
    if not url.startswith(prefix):
        return False
    try:
        wanted, given = urlsplit(prefix), urlsplit(url)
        ports = wanted.port, given.port
    except ValueError:  # a port that is no number: names no server
        return False
    return ((wanted.scheme.lower(), wanted.hostname) == (given.scheme.lower(), given.hostname)
            and (ports[0] is None or ports[0] == ports[1]))


def read_checkpoint(folder: Path, url: str) -> str | None:
    """Where the last pull of the collection at ``url`` ended. The file names each collection by its URL
    without credentials (it is committed); a file written before that may hold the URL as given."""
    path = folder / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        collections = orjson.loads(path.read_bytes())["collections"]
        entry = collections.get(public_url(url)) or collections[url]
        value = entry["added_after"]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    return value if isinstance(value, str) and timestamp_key(value) is not None else None


def _write_checkpoint(folder: Path, url: str, added_after: str) -> None:
    path = folder / CHECKPOINT_FILE
    data: dict[str, Any] = {"collections": {}}
    if path.is_file():
        try:
            loaded = orjson.loads(path.read_bytes())
            if isinstance(loaded, dict) and isinstance(loaded.get("collections"), dict):
                data = loaded
        except orjson.JSONDecodeError:
            pass
    data["collections"].pop(url, None)  # the URL as given, credentials and all, by an earlier tiops
    data["collections"][public_url(url)] = {"added_after": added_after}
    data["collections"] = dict(sorted(data["collections"].items()))
    # Whole or not at all: a checkpoint cut short reads as none, and the next pull would start from
    # scratch and forget every other collection's checkpoint kept in the same file.
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_whole(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    except OSError as error:
        raise TiopsError(f"cannot write the TAXII checkpoint {path}: {error.strerror or error}; the objects were "
                         "imported and the checkpoint is unchanged, so the next pull fetches them again",
                         hint="Check that the folder is writable and the disk has room, then pull again.") from None


# Seconds to connect and between two bytes of an answer; answers that fail transiently (HTTP 429,
# 5xx, a dropped connection) are asked again after 1, 2 and 4 s. A server's Retry-After is not
# followed: it could ask for a day.
TIMEOUT_SECONDS = 60.0
_RETRIES = 3


class _PatientAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with a timeout on every request and retries of transient failures."""

    def __init__(self) -> None:
        from urllib3.util.retry import Retry

        super().__init__(max_retries=Retry(total=_RETRIES, backoff_factor=1.0, status_forcelist=(429, 500, 502, 503, 504),
                                           allowed_methods=None, respect_retry_after_header=False,
                                           raise_on_status=False))

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = TIMEOUT_SECONDS
        return super().send(request, **kwargs)


def _later(first: str | None, second: str | None) -> str | None:
    keys = [(timestamp_key(value), value) for value in (first, second) if value is not None]
    known = [(key, value) for key, value in keys if key is not None]
    return max(known)[1] if known else None


# taxii2client's advice to its Python users, which follows its own message.
_CLIENT_ADVICE = re.compile(r"\s*If you are trying to contact a TAXII 2\.[01] Server")


class Pull(NamedTuple):
    """What one pull of a collection brought."""

    objects: list[Any]
    pages: int
    date_added_last: str | None  # the latest X-TAXII-Date-Added-Last header
    # The names an object gives twice, by its index in ``objects`` (paths within the object).
    duplicates: dict[int, list[DuplicateKey]]


def pull_collection(url: str, credentials: Credentials | None, *, added_after: str | None,
                    page_size: int = DEFAULT_PAGE_SIZE, progress: Progress = no_progress) -> Pull:
    """Every object of the collection added after ``added_after``.

    Each page is also checked for names given twice (tiops.jsontext.duplicate_keys, from
    the bytes the server sent): the JSON parser taxii2client reads it with keeps one of
    the values without a word. An envelope that names a member twice is no envelope to trust.
    """
    from taxii2client.exceptions import TAXIIServiceException  # type: ignore[import-untyped]
    from taxii2client.v21 import Collection, as_pages  # type: ignore[import-untyped]

    # Its "different amount of objects" warning is ordinary paging (a server whose pages are
    # smaller than asked for), printed with the wall-clock time over the command's output.
    logging.getLogger("taxii2client").setLevel(logging.ERROR)

    latest: list[str | None] = [None]
    page_text = [b""]  # the last page as sent, for the repeated-name check

    def remember_date_added(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/objects/" in response.url and response.ok:
            latest[0] = _later(latest[0], response.headers.get(DATE_ADDED_LAST))
            page_text[0] = response.content

    objects: list[Any] = []
    duplicates: dict[int, list[DuplicateKey]] = {}
    pages = 0
    try:
        collection = Collection(url, user=credentials.username if credentials else None,
                                password=credentials.password if credentials else None)
        session = collection._conn.session
        session.hooks["response"].append(remember_date_added)
        # taxii2client sets no timeout (a server that never answers hung the import) and no retry.
        adapter = _PatientAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        pages_of_query = TaxiiPages(redact(url))
        for envelope in as_pages(collection.get_objects, per_request=page_size, added_after=added_after):
            # Checked before taxii2client reads the envelope to ask for the next page.
            items = pages_of_query.items(envelope)
            _page_duplicates(page_text[0], envelope, len(objects), duplicates, redact(url))
            objects.extend(items)
            pages += 1
            progress("pull", len(objects), 0)  # TAXII gives no total: 0 means unknown
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        hint = "Check the user name and password variables named in tiops.yaml." if status in (401, 403) else None
        raise TiopsError(f"the TAXII server answered {status} for {redact(url)}", hint=hint) from None
    except requests.RequestException as error:
        # A read timeout after the retries comes wrapped (requests' ConnectionError of urllib3's MaxRetryError).
        why = (f"no answer within {TIMEOUT_SECONDS:g} s" if isinstance(error, requests.Timeout) or "timed out" in str(error)
               else error.__class__.__name__)
        raise TiopsError(f"cannot reach the TAXII server at {public_url(redact(url))}: {why}") from None
    except (TAXIIServiceException, ValueError, KeyError, RecursionError) as error:
        # taxii2client ends some messages with advice for its own Python users ("use 'from
        # taxii2client.v20 import X'"), which means nothing to someone running tiops.
        said, *advice = _CLIENT_ADVICE.split(str(error), maxsplit=1)
        hint = ("tiops reads TAXII 2.1 (its media type is application/taxii+json;version=2.1): check that the URL "
                "is the server's API root, not a web page or a TAXII 2.0 server.") if advice else None
        raise TiopsError(f"the TAXII server at {redact(url)} sent an answer that is not TAXII 2.1: "
                         f"{server_text(said)}", hint=hint) from None
    return Pull(objects, pages, latest[0], duplicates)


def _page_duplicates(text: bytes, envelope: Any, offset: int, duplicates: dict[int, list[DuplicateKey]],
                     url: str) -> None:
    """Add the names the objects of one page give twice to ``duplicates`` (by index in the whole pull, the
    page's first object being number ``offset``); raise TiopsError for an envelope that names a member twice."""
    for duplicate in duplicate_keys(text, envelope):
        path = duplicate.path
        if not path:
            # Which 'objects' (or 'more', or 'next') the server meant is a guess (TAXII 2.1 section 3.7, envelope).
            raise TiopsError(f"the TAXII server at {url} sent an envelope that names {duplicate.key!r} more than "
                             "once (RFC 8259 section 4: names SHOULD be unique): which value counts is a guess",
                             hint="Ask the server's operator; nothing was written and the checkpoint did not move.")
        if path[0] == "objects" and len(path) > 1 and type(path[1]) is int:
            duplicates.setdefault(offset + path[1], []).append(DuplicateKey(path[2:], duplicate.key, duplicate.values))


def import_taxii(root: Path, api_root: str, collection_id: str, source: str, *, mode: str = "valid-only",
                 full: bool = False, page_size: int = DEFAULT_PAGE_SIZE, strict: bool = False,
                 progress: Progress = no_progress) -> ImportReport:
    """Pull the collection into ``intel/<source>/`` and move the checkpoint on when the import was written."""
    url = collection_url(api_root, collection_id)
    register_url_login(url)  # user:password@ in the URL: sent, never shown or written
    folder = source_folder(root, source)
    credentials = credentials_for(root, url)
    added_after = None if full else read_checkpoint(folder, url)
    objects, pages, date_added_last, duplicates = pull_collection(url, credentials, added_after=added_after,
                                                                  page_size=page_size, progress=progress)
    # The objects as read: writing them out for stix.parse would fail on what a server may
    # send (nesting beyond orjson's limit, integers beyond 64 bits) instead of reporting it.
    report = import_parsed(root, stix.parse_items(objects, duplicates=duplicates), source, mode=mode, strict=strict,
                           progress=progress)
    since = f" added after {added_after}" if added_after else ""
    report.notes.append(f"pulled {len(objects)} object(s){since} in {pages} page(s) from {public_url(url)}")
    checkpoint = _later(added_after, date_added_last)
    waiting = report.rejected_as_dependent
    if waiting and checkpoint is not None and checkpoint != added_after:
        # A dependent waits for an object a later pull may bring (or a fixed version of a rejected
        # one): past the checkpoint, no incremental pull would send it again.
        report.notes.append(f"{waiting} object(s) were rejected as dependent: the checkpoint stays at "
                            f"{added_after or 'the start'} so the next pull fetches them again")
        checkpoint = added_after
    if report.written and checkpoint is not None and checkpoint != added_after:
        _write_checkpoint(folder, url, checkpoint)
        report.notes.append(f"next pull starts after {checkpoint} ({report.folder}/{CHECKPOINT_FILE})")
    return report
