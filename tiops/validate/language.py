"""Language content against the object it translates (STIX 2.1 section 7.1).

A language-content names its object by ``object_ref`` and, optionally, the version it
translates by ``object_modified``, which "MUST be an exact match for the modified time
of the STIX Object being referenced". A repository holds one version of each object, so
when the object it names has another ``modified``, the object was most likely
re-versioned after the translation was written: the translation may no longer say what
the object says. That is a warning (TI303), not an error: the language-content is still
a true statement about the version it names, which a consumer may hold.
"""

from __future__ import annotations

from collections.abc import Sequence

from tiops.codes import make_finding
from tiops.findings import Finding
from tiops.load import IntelObject
from tiops.stix import timestamp_key

LANGUAGE_CONTENT = "language-content"


def check_language_contents(objects: Sequence[IntelObject]) -> list[Finding]:
    """TI303 for each language-content whose ``object_modified`` is not the ``modified`` of the object it names.

    An object that is not among ``objects`` is TI300's (a dangling ``object_ref``); a
    timestamp that is not one is TI204's; an object without ``modified`` (an SCO, a
    marking-definition: no versions) gives nothing to compare. Timestamps are compared
    as instants, so ``...00Z`` and ``...00.000Z`` match. A bundle may carry several
    versions of the object: matching any of them is enough.
    """
    contents = [obj for obj in objects if obj.data.get("type") == LANGUAGE_CONTENT]
    if not contents:
        return []
    named = {reference for obj in contents if type(reference := obj.data.get("object_ref")) is str}
    versions: dict[str, list[str]] = {}
    for obj in objects:
        identifier = obj.data.get("id")
        if type(identifier) is str and identifier in named:
            modified = obj.data.get("modified")
            if type(modified) is str and timestamp_key(modified) is not None:
                versions.setdefault(identifier, []).append(modified)
    findings: list[Finding] = []
    for obj in contents:
        reference, version = obj.data.get("object_ref"), obj.data.get("object_modified")
        if type(reference) is not str or type(version) is not str or reference not in versions:
            continue
        wanted = timestamp_key(version)
        held = versions[reference]
        if wanted is None or any(timestamp_key(modified) == wanted for modified in held):
            continue
        latest = max(held, key=lambda modified: timestamp_key(modified) or ("", ""))
        findings.append(make_finding(
            "TI303", f"object_modified is {version}, but {reference} has modified {latest}: the contents "
                     "translate another version of it (STIX 2.1 section 7.1)",
            obj.location("object_modified"), stix_id=obj.id,
            hint=f"Check that the translations still match {reference} as it is now, then set object_modified "
                 f"to {latest}."))
    return findings
