"""A cold build's work on the enrichment lock, done by a forked helper while the build loads.

A build with no warm build cache reads and checks the whole lock (its findings, TI150 and
TI151) and builds every enriched object's extension: about a second of one core for an
84k-value lock and 56k enriched objects, all of it after loading, where the second core is
idle (docs/performance.md, "Enrichment lock beside a cold build"). None of it needs the
repository but finding which values each object names. So a helper forked before loading,
while this process is small (tiops.forkwork.run_beside):

- reads and checks the lock as a build does (tiops.enrich.lock.read_lock_checked), for the
  findings and digest the build reports and keeps;
- serialises each found result as the bundle carries it (tiops.enrich.attach.bundle_form,
  keys sorted as the bundle writes them), a whois result also cut where ``age_days`` goes.

This process then finds each object's values as ever (tiops.enrich.attach.find_plans) and
joins the serialised results into the extension, which the bundle writes as it is
(``orjson.Fragment``): the bytes the results as dictionaries give
(tests/enrich/test_beside.py). Whatever the helper cannot give (it failed, the lock changed
meanwhile) is done here the one-process way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson

from tiops.codes import make_finding
from tiops.enrich.attach import (
    GEO_FIELDS,
    WHOIS_FIELDS,
    EnrichmentPlan,
    LockKeys,
    bundle_form,
    find_plans,
    is_address_key,
    later_within_a_microsecond,
    moment_of,
    past_microseconds,
)
from tiops.enrich.lock import (
    CheckedElsewhere,
    checked_elsewhere,
    lock_signature,
    lock_size,
    read_lock_checked,
)
from tiops.findings import Location, Severity
from tiops.forkwork import Beside, run_beside
from tiops.load import IntelObject
from tiops.memory import paused_gc

__all__ = ["LOCK_BYTES_TO_FORK", "PreparedEnrichment", "lock_work_beside", "prepared_enrichment"]

# From a lock this size on, a cold build has a helper read it (when helpers are wanted at
# all: tiops.load.fork_helper). Below it the lock's work is a few hundredths of a second,
# less than forking and handing the results back.
LOCK_BYTES_TO_FORK: Final = 1 << 20
# As tiops.compile serialises bundle objects (tiops.compile._JSON_OPTIONS): the pieces are
# spliced into its lines as they are, so they must be what it would have written.
_OPTIONS: Final = orjson.OPT_SORT_KEYS
_DAY_MICROSECONDS: Final = 86_400_000_000
_AGE_KEY: Final = b'"age_days":'
# A whois result as the helper hands it over: with no registration moment, its bundle form
# serialised; with one, the form with "age_days" cut out (the text before the number and
# after it), that moment in microseconds (_micros) and the digits of its fraction past them
# (tiops.enrich.attach.past_microseconds).
_WhoisForm = tuple[bytes, bytes, bytes, int | None, str]
# The moment age_days counts from: microseconds and the digits past them.
_Start = tuple[int, str]
# An empty form: a value the lock has without a found result (find_plans(forms=True)).
_NOT_FOUND: Final = b""
_UNSET: Final[Any] = object()
# The extension around its lists of results, keys in the order the bundle sorts them.
_GEO_ONLY: Final = b'{"enrichment":[%b],"extension_type":"property-extension"}'
_WHOIS_ONLY: Final = b'{"extension_type":"property-extension","whois":[%b]}'
_BOTH: Final = b'{"enrichment":[%b],"extension_type":"property-extension","whois":[%b]}'


def _micros(moment: datetime) -> int:
    """Microseconds from 0001-01-01 to ``moment``, a UTC moment (tiops.enrich.attach.moment_of
    reads only timestamps ending in "Z"). Differences are exact, and the floor of a difference
    in days is what ``(a - b).days`` gives."""
    return ((moment.toordinal() * 86_400 + moment.hour * 3_600 + moment.minute * 60 + moment.second) * 1_000_000
            + moment.microsecond)


def _whois_form(value: str, entry: dict[str, Any]) -> _WhoisForm:
    item = bundle_form(value, entry, WHOIS_FIELDS)
    registered = None if is_address_key(value) else moment_of(entry.get("registered"))
    if registered is None:
        return orjson.dumps(item, option=_OPTIONS), b"", b"", None, ""
    # age_days is no field a lock result carries into the bundle (tiops.enrich.fields): only
    # the extension adds it, so the form for an object with no moment to count from is
    # this one without it (_without_age).
    item["age_days"] = 0
    aged = orjson.dumps(item, option=_OPTIONS)
    # The key itself: inside a JSON string every quote is escaped, so '"age_days":' occurs
    # nowhere else in a compact serialisation.
    cut = aged.index(_AGE_KEY) + len(_AGE_KEY)
    return b"", aged[:cut], aged[cut + 1:], _micros(registered), past_microseconds(entry["registered"])


def _without_age(before: bytes, after: bytes) -> bytes:
    """The serialised whois form with no "age_days": ``before`` and ``after`` (_whois_form)
    joined without the key and one comma beside it."""
    before = before[:-len(_AGE_KEY)]
    if before.endswith(b","):
        return before[:-1] + after
    return before + after[1:] if after.startswith(b",") else before + after


def _prepared(intel_path: Path, root: Path) -> tuple[Any, ...]:
    """In the helper: the lock's check and its results serialised, as plain values for marshal."""
    signature, digest, lock, findings = read_lock_checked(intel_path, root)
    with paused_gc():
        geo = {value: orjson.dumps(bundle_form(value, entry, GEO_FIELDS), option=_OPTIONS)
               if entry.get("status") == "found" else _NOT_FOUND for value, entry in lock.geo.items()}
        whois = {value: _whois_form(value, entry) if entry.get("status") == "found" else _NOT_FOUND
                 for value, entry in lock.whois.items()}
    found = [(f.code, int(f.severity), f.message, f.hint, f.stix_id, f.location.file, f.location.line,
              f.location.column) for f in findings]
    return signature, digest, found, geo, whois


class PreparedEnrichment:
    """Locked enrichment for the bundle from the helper's serialised results (tiops.enrich.attach.BundleEnrichment).

    Each extension is an ``orjson.Fragment``, so this is only for writing the bundle
    (tiops.pipeline.build); a reader of the objects' extensions gets them from
    tiops.enrich.attach.LockedEnrichment.
    """

    def __init__(self, geo: dict[str, bytes], whois: dict[str, _WhoisForm | bytes]) -> None:
        self._geo = geo
        self._whois = whois
        self._known = LockKeys(geo, whois)

    @staticmethod
    def _start(data: dict[str, Any]) -> _Start | None:
        text = data["valid_from"] if "valid_from" in data else data.get("created")
        moment = moment_of(text)
        return None if moment is None else (_micros(moment), past_microseconds(str(text)))

    def plans(self, objects: list[IntelObject]) -> list[EnrichmentPlan | None]:
        with paused_gc():
            return find_plans(objects, self._known, self._geo, self._whois, forms=True)

    def extension(self, data: dict[str, Any], plan: EnrichmentPlan) -> orjson.Fragment:
        # tiops.enrich.attach.LockedEnrichment.extension, joined from serialised pieces: the keys
        # "enrichment" < "extension_type" < "whois" in the order the bundle sorts them.
        if len(plan) == 1:  # nearly every object names one value: no lists to join
            _, geo_form, whois_form = plan[0]
            if whois_form is None:
                return orjson.Fragment(_GEO_ONLY % geo_form)
            whois_text = self._whois_text(data, whois_form, _UNSET)[0]
            return orjson.Fragment(_WHOIS_ONLY % whois_text if geo_form is None else _BOTH % (geo_form, whois_text))
        geo: list[bytes] = []
        whois: list[bytes] = []
        start: Any = _UNSET
        for _, geo_form, whois_form in plan:
            if geo_form is not None:
                geo.append(geo_form)
            if whois_form is not None:
                text, start = self._whois_text(data, whois_form, start)
                whois.append(text)
        if not whois:
            return orjson.Fragment(_GEO_ONLY % b",".join(geo))
        if not geo:
            return orjson.Fragment(_WHOIS_ONLY % b",".join(whois))
        return orjson.Fragment(_BOTH % (b",".join(geo), b",".join(whois)))

    def _whois_text(self, data: dict[str, Any], form: _WhoisForm, start: Any) -> tuple[bytes, Any]:
        """One whois result's text in ``data``'s extension, and the moment age_days counts from
        (``start``: that moment if known already, else _UNSET)."""
        plain, before, after, registered, registered_past = form
        if registered is not None:
            if start is _UNSET:
                start = self._start(data)
            if start is not None:
                # tiops.enrich.attach.days_between, on microseconds.
                days, rest = divmod(start[0] - registered, _DAY_MICROSECONDS)
                if rest == 0 and later_within_a_microsecond(registered_past, start[1]):
                    days -= 1
                return b"%b%d%b" % (before, days, after), start
        return plain or _without_age(before, after), start


class _LockWork:
    """The helper's work on one lock, taken when first asked for (the check, then the results)."""

    def __init__(self, beside: Beside) -> None:
        self._beside = beside
        self._taken = False
        self.checked: CheckedElsewhere | None = None
        self.enrichment: PreparedEnrichment | None = None

    def check(self) -> CheckedElsewhere | None:
        self._take()
        return self.checked

    def _take(self) -> None:
        if self._taken:
            return
        self._taken = True
        result = self._beside.result()
        try:
            signature, digest, found, geo, whois = result
            findings = [make_finding(code, message, Location(file, line, column), stix_id=stix_id, hint=hint,
                                     severity=Severity(severity))
                        for code, severity, message, hint, stix_id, file, line, column in found]
        except (TypeError, ValueError, KeyError):
            return  # no result (the helper failed) or not one of this shape: the lock is read here
        self.checked = CheckedElsewhere(signature, digest, findings)
        self.enrichment = PreparedEnrichment(geo, whois)

    def close(self) -> None:
        self._beside.close()


# The helper's work for the lock being built now, by lock folder (lock_work_beside).
_WORK: dict[str, _LockWork] = {}


@contextlib.contextmanager
def lock_work_beside(intel_path: Path, root: Path, wanted: bool) -> Iterator[None]:
    """While the block runs (a cold build: load, validate, compile), a helper forked now does
    the lock's work, if ``wanted`` and the lock is large enough to gain by it
    (:data:`LOCK_BYTES_TO_FORK`); otherwise nothing changes. The build reads the check
    through tiops.enrich.lock.checked_elsewhere and the results through
    :func:`prepared_enrichment`; the helper is stopped when the block ends, whatever ends it."""
    if not wanted or lock_size(intel_path) < LOCK_BYTES_TO_FORK:
        yield
        return
    beside = run_beside(lambda: _prepared(intel_path, root))
    if beside is None:
        yield
        return
    work = _LockWork(beside)
    key = os.fspath(intel_path)
    _WORK[key] = work
    try:
        with checked_elsewhere(intel_path, root, work.check):
            yield
    finally:
        _WORK.pop(key, None)
        work.close()


def prepared_enrichment(intel_path: Path) -> PreparedEnrichment | None:
    """The helper's results for the lock under ``intel_path``, if a helper has them for the lock
    files as they are now (the same tiops.enrich.lock.lock_signature); else None."""
    work = _WORK.get(os.fspath(intel_path))
    if work is None:
        return None
    checked = work.check()
    if checked is None or checked.signature != lock_signature(intel_path):
        return None
    return work.enrichment
