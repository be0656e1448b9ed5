"""Microsoft Sentinel as a target: the STIX objects upload API and the threat intelligence query API.

Writes are POSTs of ``{"sourcesystem": ..., "stixobjects": [...]}`` to the upload
endpoint (``.../threat-intelligence-stix-objects:upload``), at most 100 objects a
request and 100 requests a minute (Microsoft's documented limits; excess is
answered 429). A 200 answer may list per-record errors ``{recordIndex,
errorMessages}``: those objects are reported as refused, the rest landed.
Sentinel cannot delete: removed objects are re-uploaded with ``revoked: true``.

State is read through the query endpoint, paged by ``nextLink``. Requests are
paced to the target's ``requests_per_minute`` so that a steady apply does not
run into 429 at all; 429/5xx still raise :class:`TransientStoreError` for
:func:`tiops.apply._retrying` (which honours Retry-After).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tiops.config import is_http_url
from tiops.errors import UsageError
from tiops.paging import PagedRead
from tiops.redact import redact, register_url_login, server_text
from tiops.stores import (
    ObjectError,
    StoredVersion,
    StoreError,
    TransientStoreError,
    content_digest,
    version_key,
)
from tiops.stores.remote import (
    DigestCache,
    LocalLock,
    LocallyLocked,
    http_failure,
    readable_object,
    secret_from_env,
)
from tiops.yamlio import json_kind

#: Documented limits of the upload API: objects per request, requests per minute.
MAX_OBJECTS_PER_REQUEST = 100
DEFAULT_REQUESTS_PER_MINUTE = 100
DEFAULT_API_VERSION = "2024-02-01-preview"
DEFAULT_UPLOAD_URL = ("https://api.ti.sentinel.azure.com/workspaces/{workspace_id}"
                      "/threat-intelligence-stix-objects:upload?api-version={api_version}")
DEFAULT_QUERY_URL = ("https://management.azure.com/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
                     "/providers/Microsoft.OperationalInsights/workspaces/{workspace_name}"
                     "/providers/Microsoft.SecurityInsights/threatIntelligence/main/queryIndicators"
                     "?api-version={query_api_version}")
DEFAULT_QUERY_API_VERSION = "2024-03-01"
MIN_REQUESTS_PER_MINUTE = 0.1  # the least pace a target or an RDAP server may be given


class RequestPacer:
    """Spaces requests at least ``60 / requests_per_minute`` seconds apart.

    Spacing (rather than bursting up to the limit, then waiting) keeps any window
    of a minute at or below the limit, whatever window the server counts in.
    """

    def __init__(self, requests_per_minute: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 60.0 / requests_per_minute
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self.requests = 0

    def wait(self) -> None:
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval
        self.requests += 1


class SentinelStore(LocallyLocked):
    supports_delete = False

    def __init__(self, upload_url: str, query_url: str, *, token: str, query_token: str | None = None,
                 root: Path, target: str, source_system: str = "tiops", page_size: int = 100,
                 pacer: RequestPacer | None = None) -> None:
        self.upload_url = upload_url
        self.query_url = query_url
        self.source_system = source_system
        self.page_size = page_size
        self.pacer = pacer or RequestPacer(DEFAULT_REQUESTS_PER_MINUTE)
        self._http = requests.Session()
        self._upload_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._query_headers = {"Authorization": f"Bearer {query_token or token}", "Content-Type": "application/json"}
        self._cache = DigestCache(root, target)
        self._lock = LocalLock(root, target)
        self._current: dict[str, dict[str, Any]] | None = None
        # Versions accepted in this process: a batch retried after a 429 half-way
        # through does not upload its first requests again.
        self._accepted: set[tuple[str, str, str]] = set()

    def manifest(self) -> dict[str, StoredVersion]:
        current = self._read_all()
        self._cache.record(current.values(), by_tiops=False)
        known = self._cache.lookup((i, version_key(o)) for i, o in current.items())
        written = self._cache.written_ids()
        manifest: dict[str, StoredVersion] = {}
        for stix_id, obj in current.items():
            version = version_key(obj)
            cached = known[(stix_id, version)]
            manifest[stix_id] = StoredVersion(version, content_digest(obj), bool(obj.get("revoked", False)),
                                              cached.by_tiops, cached.by_tiops or stix_id in written)
        return manifest

    def current_objects(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        current = self._current if self._current is not None else self._read_all()
        return {i: current[i] for i in ids if i in current}

    def write_versions(self, objects: Sequence[dict[str, Any]], digests: Sequence[str] | None = None) -> list[ObjectError]:
        self._current = None
        pending = [o for o in objects if (o["id"], version_key(o), content_digest(o)) not in self._accepted]
        errors: list[ObjectError] = []
        for start in range(0, len(pending), MAX_OBJECTS_PER_REQUEST):
            chunk = pending[start:start + MAX_OBJECTS_PER_REQUEST]
            # Recorded as tiops' around the request (DigestCache.sending); what the API refuses record by
            # record is forgotten again below.
            with self._cache.sending(chunk):
                answer = self._post(self.upload_url, self._upload_headers,
                                    {"sourcesystem": self.source_system, "stixobjects": chunk}, "upload")
            refused: set[int] = set()
            for record in _record_errors(answer):
                index = record.get("recordIndex")
                if isinstance(index, int) and 0 <= index < len(chunk):
                    refused.add(index)
                    reasons = record.get("errorMessages") or ["refused"]
                    errors.append(ObjectError(chunk[index]["id"], "Sentinel: " + server_text("; ".join(map(str, reasons)))))
            accepted = [obj for index, obj in enumerate(chunk) if index not in refused]
            self._cache.forget(chunk[index] for index in sorted(refused))
            self._accepted.update((o["id"], version_key(o), content_digest(o)) for o in accepted)
        return errors

    def delete_objects(self, ids: Sequence[str]) -> list[ObjectError]:
        return [ObjectError(i, "Microsoft Sentinel cannot delete objects; use on_remove: revoke") for i in ids]

    def close(self) -> None:
        self._lock.release()
        self._cache.close()
        self._http.close()

    def _read_all(self) -> dict[str, dict[str, Any]]:
        """Every current object, following ``nextLink`` until the last page."""
        found: dict[str, dict[str, Any]] = {}
        url: str | None = self.query_url
        read = PagedRead(f"Sentinel query endpoint {self.query_url.split('?')[0]}", StoreError)
        while url:
            page = self._post(url, self._query_headers, {"pageSize": self.page_size}, "query")
            if "value" not in page:
                # Read as "no object" it would plan every object again and hide every removal.
                raise StoreError("Sentinel query endpoint: the answer has no 'value' list of objects; "
                                 "it is not a query answer")
            objects = page["value"]
            if not isinstance(objects, list):
                raise StoreError(f"Sentinel query endpoint: the answer's value is a JSON {json_kind(objects)}, "
                                 "not a list of objects")
            link = page.get("nextLink")
            read.page(objects, more=bool(link))  # a read that would never end is stopped
            for obj in objects:
                if isinstance(obj, dict) and "id" in obj:
                    if type(obj["id"]) is not str:
                        # No STIX identifier (section 2.9): nothing to compare, record or revoke it by.
                        raise StoreError(f"Sentinel query endpoint: an object's id is a JSON {json_kind(obj['id'])}, "
                                         "not a STIX identifier; the answer is no list of STIX objects")
                    found[obj["id"]] = readable_object(obj, "Sentinel query endpoint")
            url = self._same_origin(str(link)) if link else None
        self._current = found
        return found

    def _same_origin(self, link: str) -> str:
        """A nextLink only on the query endpoint's own host: the token goes with every page request."""
        wanted, got = urlsplit(self.query_url), urlsplit(link)
        if (got.scheme, got.netloc) != (wanted.scheme, wanted.netloc):
            raise StoreError(f"Sentinel query endpoint: the answer's nextLink leads to another host "
                             f"({server_text(got.netloc, 100)}); tiops does not send the token there")
        return link

    def _post(self, url: str, headers: Mapping[str, str], body: Mapping[str, Any], what: str) -> dict[str, Any]:
        self.pacer.wait()
        where = f"Sentinel {what} endpoint {url.split('?')[0]}"
        try:
            response = self._http.post(url, json=body, headers=dict(headers), timeout=300)
        except (requests.ConnectionError, requests.Timeout) as error:
            raise TransientStoreError(f"{where}: {type(error).__name__}") from None
        if response.status_code >= 300:
            failure = http_failure(where, response.status_code, response.headers.get("Retry-After"))
            # A 400 to an upload may list its records: named from the objects the body sent.
            named = (_refused_records(response, body.get("stixobjects") or ())
                     if response.status_code == 400 and what == "upload" else "")
            if named and not isinstance(failure, TransientStoreError):
                raise StoreError(f"{failure.message}; the request was refused for {named}")
            raise failure
        if not response.content:
            return {}
        try:
            answer = response.json()
        except (ValueError, RecursionError):
            raise StoreError(f"{where}: the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise StoreError(f"{where}: the answer is a JSON {json_kind(answer)}, not an object")
        return answer


def _refused_records(response: requests.Response, chunk: Sequence[Mapping[str, Any]]) -> str:
    """The objects a 400 answer's per-record errors name, with the server's messages (made safe), or ''."""
    try:
        answer = response.json()
    except (ValueError, RecursionError):
        return ""
    if not isinstance(answer, dict):
        return ""
    named = []
    for record in _record_errors(answer):
        index = record.get("recordIndex")
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(chunk):
            reasons = record.get("errorMessages") or ["refused"]
            reasons = reasons if isinstance(reasons, list) else [reasons]
            named.append(f"{chunk[index].get('id')}: " + server_text("; ".join(map(str, reasons)), 200))
    return "; ".join(named[:5]) + (f" (and {len(named) - 5} more)" if len(named) > 5 else "")


def _record_errors(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    errors = answer.get("errors") or []
    return [record for record in errors if isinstance(record, dict)] if isinstance(errors, list) else []


def _url(name: str, entry: Mapping[str, Any], key: str, template: str) -> str:
    values = {k: str(v) for k, v in entry.items() if isinstance(v, str | int)}
    values.setdefault("api_version", DEFAULT_API_VERSION)
    values.setdefault("query_api_version", DEFAULT_QUERY_API_VERSION)
    try:
        url = str(entry.get(key, template)).format_map(values)
    except KeyError as missing:
        raise UsageError(f"target {name!r}: {key} needs the setting {missing.args[0]!r}") from None
    register_url_login(url)  # user:password@ in it is sent (requests reads it), never shown
    if not is_http_url(url):
        raise UsageError(f"target {name!r}: {key} {redact(url)!r} is not an http:// or https:// URL with a host",
                         hint=f"Leave {key} out for the Azure endpoint, or give the full https:// URL.")
    return url


def open_sentinel(name: str, entry: Mapping[str, Any], root: Path, *, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> SentinelStore:
    token = secret_from_env(name, entry, "token_env")
    query_token = secret_from_env(name, entry, "query_token_env", required=False)
    rate = entry.get("requests_per_minute", DEFAULT_REQUESTS_PER_MINUTE)
    page_size = entry.get("page_size", 100)
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not rate >= MIN_REQUESTS_PER_MINUTE:
        # Below one request every ten minutes an apply would sleep for hours without a word (and a
        # rate near zero gives a wait no clock can hold).
        raise UsageError(f"target {name!r}: requests_per_minute must be a number of at least {MIN_REQUESTS_PER_MINUTE}")
    if type(page_size) is not int or page_size < 1:  # True is an int to isinstance
        raise UsageError(f"target {name!r}: page_size must be a positive integer")
    assert token is not None
    return SentinelStore(
        _url(name, entry, "upload_url", DEFAULT_UPLOAD_URL), _url(name, entry, "query_url", DEFAULT_QUERY_URL),
        token=token, query_token=query_token, root=root, target=name,
        source_system=str(entry.get("source_system", "tiops")), page_size=page_size,
        pacer=RequestPacer(float(rate), clock=clock, sleep=sleep),
    )
