"""A TAXII 2.1 collection as a target (taxii2-client).

State is read through the collection's manifest endpoint (TAXII 2.1 section 5.6),
filtered to ``spec_version`` 2.1: one entry per object with its current version,
which is far cheaper than reading the objects back. Content digests come from a
local cache (see :mod:`tiops.stores.remote`); only versions missing from it are
read, by id, from the objects endpoint (section 5.3).

Writes are POSTs of envelopes (section 5.4). A server may answer a re-POST of a
version it already holds as a failure (medallion does): every failure is checked
against the manifest, and a version the collection holds counts as written.
TAXII has no delete, so removed objects are revoked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from taxii2client.exceptions import TAXIIServiceException  # type: ignore[import-untyped]
from taxii2client.v21 import Collection, as_pages  # type: ignore[import-untyped]

from tiops.config import is_http_url
from tiops.errors import UsageError
from tiops.paging import TaxiiPages
from tiops.redact import redact, register_login, register_url_login, server_text
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

ID_CHUNK = 100


class TaxiiStore(LocallyLocked):
    supports_delete = False

    def __init__(self, collection_url: str, *, user: str | None, password: str | None, root: Path,
                 target: str, page_size: int = 1000) -> None:
        self.url = collection_url if collection_url.endswith("/") else collection_url + "/"
        self.page_size = page_size
        register_login(user, password)
        self._collection = Collection(self.url, user=user, password=password)
        self._cache = DigestCache(root, target)
        self._lock = LocalLock(root, target)

    def manifest(self) -> dict[str, StoredVersion]:
        entries = {entry["id"]: str(entry["version"]) for entry in self._manifest_entries()}
        known = self._cache.lookup(entries.items())
        missing = sorted(i for i, v in entries.items() if (i, v) not in known)
        if missing:
            # Versions this checkout has not seen (written by another tool or another checkout).
            # Many misses (a fresh checkout): one paged read of the whole collection beats reads by id.
            fetched = self.current_objects(missing) if len(missing) <= ID_CHUNK else self._all_objects()
            self._cache.record((o for i, o in fetched.items() if entries.get(i) == version_key(o)), by_tiops=False)
            # An object with neither `modified` nor `created` (an SCO, such as an enriched ipv4-addr)
            # has no version of its own: the manifest names it by its date_added (medallion does so).
            # Kept under that version, so the next plan finds it without reading it again, and under
            # '' as every other store keys it: the two rows with one digest mark it as unversioned.
            # Without this it was never found: every plan showed it as to create, and each apply's
            # re-POST was refused by the collection, which holds it already.
            unversioned = [o for i, o in fetched.items() if i in entries and not version_key(o)]
            self._cache.record(unversioned, by_tiops=False, versions=entries)
            self._cache.record(unversioned, by_tiops=False)
            known = self._cache.lookup(entries.items())
        plain = self._cache.lookup((stix_id, "") for stix_id in entries)
        written = self._cache.written_ids()
        manifest: dict[str, StoredVersion] = {}
        for stix_id, version in entries.items():
            cached = known.get((stix_id, version))
            if cached is None:
                continue  # a version that changed between the two reads: the next plan sees it
            by_tiops = cached.by_tiops
            same = plain.get((stix_id, ""))
            if same is not None and same.digest == cached.digest:
                # Unversioned, as tiops wrote it (the row tiops recorded when it sent it) or read it.
                version, by_tiops = "", by_tiops or same.by_tiops
            manifest[stix_id] = StoredVersion(version, cached.digest, cached.revoked, by_tiops,
                                              by_tiops or stix_id in written)
        return manifest

    def current_objects(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), ID_CHUNK):
            chunk = list(ids[start:start + ID_CHUNK])
            for page in self._paged(self._collection.get_objects, id=",".join(chunk), spec_version="2.1"):
                for obj in page:
                    found[obj["id"]] = readable_object(obj, f"TAXII server {self.url}")
        return found

    def write_versions(self, objects: Sequence[dict[str, Any]], digests: Sequence[str] | None = None) -> list[ObjectError]:
        if not objects:
            return []
        # A TAXII collection keys a version by id and `modified` (`created` for an object without one,
        # such as a marking definition): other content under a version it already holds is never stored,
        # and the server's "already held" would read as written. Refused here, naming the object.
        errors = self._same_version_changes(objects)
        if errors:
            refused_ids = {error.stix_id for error in errors}
            objects = [o for o in objects if o["id"] not in refused_ids]
            if not objects:
                return errors
        # Recorded as tiops' around the request (DigestCache.sending); what the server refuses one by
        # one is forgotten again below.
        with self._cache.sending(objects):
            status = self._call(lambda: self._collection.add_objects({"objects": list(objects)}, timeout=300))
        failures = {str(f.get("id")): server_text(f.get("message") or "refused") for f in getattr(status, "failures", [])}
        held = self._held_versions(sorted(failures)) if failures else set()
        failed = [ObjectError(obj["id"], f"TAXII server: {failures[obj['id']]}") for obj in objects
                  if obj["id"] in failures and (obj["id"], version_key(obj)) not in held]
        refused = {error.stix_id for error in failed}
        self._cache.forget(o for o in objects if o["id"] in refused)
        return errors + failed

    def _same_version_changes(self, objects: Sequence[dict[str, Any]]) -> list[ObjectError]:
        """Objects whose version the collection holds with other content (as far as the digest cache
        knows, confirmed against the server's manifest): they cannot be written."""
        keys = {(o["id"], version_key(o)): o for o in objects}
        known = self._cache.lookup(keys)
        changed = {key for key, cached in known.items() if cached.digest != content_digest(keys[key])}
        if not changed:
            return []
        held = self._held_versions(sorted({stix_id for stix_id, _ in changed}))
        # An object without `modified` or `created` is held under its date_added, not under '': any
        # version of its id is the one it would replace (medallion refuses that re-POST).
        held |= {(stix_id, "") for stix_id, _ in held}
        return [ObjectError(stix_id, f"the TAXII collection already holds version {version or 'date_added'} of this "
                                     "object with other content, and keeps one content per version (id and "
                                     "modified); "
                                     + ("an object without 'modified' cannot be changed in place"
                                        if "modified" not in keys[(stix_id, version)] else "give it a later 'modified'"))
                for stix_id, version in sorted(changed & held)]

    def delete_objects(self, ids: Sequence[str]) -> list[ObjectError]:
        return [ObjectError(i, "a TAXII collection cannot delete objects; use on_remove: revoke") for i in ids]

    def close(self) -> None:
        self._lock.release()
        self._cache.close()

    def _all_objects(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for page in self._paged(self._collection.get_objects, spec_version="2.1"):
            found.update((obj["id"], readable_object(obj, f"TAXII server {self.url}")) for obj in page)
        return found

    def _manifest_entries(self) -> Iterator[dict[str, Any]]:
        for page in self._paged(self._collection.get_manifest, spec_version="2.1"):
            yield from page

    def _held_versions(self, ids: Sequence[str]) -> set[tuple[str, str]]:
        held: set[tuple[str, str]] = set()
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ",".join(ids[start:start + ID_CHUNK])
            for page in self._paged(self._collection.get_manifest, id=chunk, version="all"):
                held.update((entry["id"], str(entry["version"])) for entry in page)
        return held

    def _paged(self, endpoint: Callable[..., dict[str, Any]], **filters: str) -> Iterator[list[dict[str, Any]]]:
        """The items of each page of one query: objects or manifest entries, each a JSON object
        with an ``id`` (and, for a manifest, a ``version``), or a StoreError that says what is wrong."""
        pages = as_pages(endpoint, per_request=self.page_size, **filters)
        checked = TaxiiPages(redact(self.url), StoreError)
        manifest = endpoint == self._collection.get_manifest
        while True:
            try:
                page = self._call(lambda: next(pages))
            except StopIteration:
                return
            items = checked.items(page)  # before as_pages reads it to ask for the next page
            for item in items:
                if not (isinstance(item, dict) and isinstance(item.get("id"), str)
                        and (not manifest or "version" in item)):
                    what = "manifest entry" if manifest else "object"
                    raise StoreError(f"TAXII server {redact(self.url)} sent a {what} without "
                                     f"{'an id and a version' if manifest else 'an id'}: {server_text(item, 120)}")
            yield items

    def _call(self, operation: Callable[[], Any]) -> Any:
        try:
            return operation()
        except requests.HTTPError as error:
            response = error.response
            status = response.status_code if response is not None else 0
            retry_after = response.headers.get("Retry-After") if response is not None else None
            raise http_failure(f"TAXII server {self.url}", status, retry_after) from None
        except (requests.ConnectionError, requests.Timeout) as error:
            raise TransientStoreError(f"TAXII server {redact(self.url)}: {type(error).__name__}") from None
        except TAXIIServiceException as error:
            raise StoreError(f"TAXII server {redact(self.url)}: {server_text(error)}") from None
        except RecursionError:
            raise StoreError(f"TAXII server {redact(self.url)}: the answer is nested too deep to read") from None


def open_taxii(name: str, entry: Mapping[str, Any], root: Path) -> TaxiiStore:
    url = entry.get("url")
    if not url:
        raise UsageError(f"target {name!r}: a taxii target needs 'url', the URL of its collection")
    # user:password@ in the URL is sent as HTTP Basic credentials (requests reads it): a secret
    # like the variables' values, never shown (a password holding a quote escaped the pattern
    # redact() finds credentials in URLs by).
    register_url_login(str(url))
    if not is_http_url(str(url)):
        raise UsageError(f"target {name!r}: url {redact(str(url))!r} is not an http:// or https:// URL with a host "
                         "(TAXII 2.1 runs over HTTPS, section 1.6.2)",
                         hint="Give the collection's URL, e.g. https://taxii.example/api1/collections/ID/.")
    # username_env, as in taxii_credentials; user_env is the old spelling (TI130 in tiops validate).
    user = secret_from_env(name, entry, "username_env" if "username_env" in entry else "user_env", required=False)
    password = secret_from_env(name, entry, "password_env", required=user is not None)
    page_size = entry.get("page_size", 1000)
    if type(page_size) is not int or page_size < 1:  # bool is no page size either
        raise UsageError(f"target {name!r}: page_size must be a positive integer, not {page_size!r}",
                         hint="How many objects to ask for in one request (TAXII 2.1 section 3.4: limit), e.g. 1000.")
    return TaxiiStore(str(url), user=user, password=password, root=root, target=name, page_size=page_size)

