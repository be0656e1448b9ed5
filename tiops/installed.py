"""What identifies the installed tiops code, for the caches that must not outlive it."""

from __future__ import annotations

import os

import tiops


def package_fingerprint() -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the installed tiops files.

    Code and schemas change results without a new version number (an editable install,
    a patched file), so the build cache (tiops.buildcache) and the last build's record
    (tiops.lastbuild) are bound to the files themselves, as well as to the version.
    """
    package = os.path.dirname(os.path.abspath(tiops.__file__))
    found: list[tuple[str, int, int]] = []
    for directory, subdirs, filenames in os.walk(package):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(filenames):
            full = os.path.join(directory, name)
            try:
                info = os.stat(full)
            except OSError:
                continue
            found.append((os.path.relpath(full, package), info.st_size, info.st_mtime_ns))
    return tuple(found)
