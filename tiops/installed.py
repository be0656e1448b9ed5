"""What identifies the installed tiops code, for the caches that must not outlive it."""

from __future__ import annotations

import hashlib
import os
import sys
from functools import lru_cache

import tiops

#: The folders of sys.path whose distributions are listed (:func:`_distributions`).
_PACKAGE_FOLDERS = ("site-packages", "dist-packages")


@lru_cache(maxsize=1)
def package_fingerprint() -> str:
    """A digest of the installed tiops files' bytes and of the distributions installed beside them.

    Code and schemas change results without a new version number (an editable install,
    a patched file), so the build cache (tiops.buildcache) and the last build's record
    (tiops.lastbuild) are bound to the files themselves, as well as to the version.

    Their bytes, not their modification times: pip writes every file of a package anew, dated at
    the install, so a CI runner that installs the same tiops on every run would never find the
    cache it restored (docs/ci.md); and a file edited with its time put back would go unseen.
    Reading and hashing the package's 4 MB takes 4.5 ms warm (13 ms cold), against 1.1 ms for their lstats.

    The libraries tiops parses, checks and writes with (yaml-rs, jsonschema-rs, orjson, the STIX
    pattern grammar...) change results too, and can be upgraded without tiops: every distribution
    installed in the folders Python imports from is named with its version. Installing anything
    there costs one build that reads every file again, never a stale result.
    """
    package = os.path.dirname(os.path.abspath(tiops.__file__))
    digest = hashlib.sha256()
    buffer = bytearray(1 << 16)  # one buffer for every file: a new bytes object per file was most of the time
    view = memoryview(buffer)
    # Links followed: a checkout's tiops/schemas links to the repository's schemas/, which a wheel holds as
    # files. Each folder once, by its real path: a link back up the tree would otherwise be walked forever.
    seen: set[str] = set()
    for directory, subdirs, filenames in os.walk(package, followlinks=True):
        seen.add(os.path.realpath(directory))
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__"
                            and os.path.realpath(os.path.join(directory, d)) not in seen)
        for name in sorted(filenames):
            full = os.path.join(directory, name)
            try:
                with open(full, "rb", buffering=0) as file:
                    # Each file's path and size before its bytes: no two different packages hash alike.
                    digest.update(b"%s\0%d\0" % (os.path.relpath(full, package).encode("utf-8", "surrogateescape"),
                                                  os.fstat(file.fileno()).st_size))
                    while count := file.readinto(buffer):
                        digest.update(view[:count])
            except OSError:
                digest.update(b"\0unreadable\0")
    for name in _distributions():
        digest.update(b"%s\0" % name.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _distributions() -> list[str]:
    """The ``NAME-VERSION.dist-info`` (PEP 376), ``.egg-info`` and ``.egg`` entries of the package folders on
    ``sys.path``, sorted. A zipped or frozen tiops (a zipapp) has no folder to walk: its fingerprint is these alone."""
    found: set[str] = set()
    for entry in sys.path:
        if os.path.basename(os.path.normpath(entry or ".")) not in _PACKAGE_FOLDERS:
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        found.update(name for name in names if name.endswith(_INSTALLED_SUFFIXES))
    return sorted(found)


#: What names an installed distribution and its version: PEP 376's folder, and setuptools' older forms
#: (a system's packages, such as Debian's dist-packages, hold many of those).
_INSTALLED_SUFFIXES = (".dist-info", ".egg-info", ".egg")
