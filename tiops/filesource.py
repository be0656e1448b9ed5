"""Where the files of a repository are read from: the working tree, or a git revision.

Every stage that reads the repository's own files (tiops.yaml, intel, _defaults.yaml,
_overlay.yaml, partner locks, the enrichment lock, rules, the relationship table, and
finding positions) reads them through a :class:`FileSource`, so that `tiops diff` and
`tiops validate --base` read a base revision straight from git objects, with no
checkout written anywhere (tiops.gitrepo.GitRevision).

Paths stay what they are on disk: absolute path strings under ``root``, the working
tree's root. A revision's files answer at the place they would have in a checkout, so
findings on the base side name the same files as on the working tree.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from tiops.inputs import WalkProblem, read_input, walk


class FileSource(Protocol):
    """Read-only access to the files under ``root``: the working tree or one git revision."""

    root: Path

    def read(self, path: str) -> bytes:
        """The bytes of the regular file at ``path``; :class:`tiops.inputs.InputProblem` when it cannot be read."""
        ...

    def lexists(self, path: str) -> bool:
        """Whether anything (a file, folder or link) is at ``path``."""
        ...

    def is_dir(self, path: str) -> bool: ...

    def listdir(self, path: str) -> list[str]:
        """The names in the folder at ``path``, sorted; empty when it is not a folder."""
        ...

    def walk(self, top: str, on_problem: WalkProblem) -> Iterator[tuple[str, list[str], list[str]]]:
        """Like :func:`tiops.inputs.walk`: folders top-down, names sorted, problems reported."""
        ...

    def blob_id(self, path: str) -> str | None:
        """The git blob id of the file at ``path`` when it is known without reading it, else None."""
        ...


class WorkingTree:
    """The files on disk, read safely (tiops.inputs)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root: str | None = None  # os.path.realpath(root), worked out at the first look (_leaves)

    def read(self, path: str) -> bytes:
        return read_input(path, root=os.fspath(self.root))

    def lexists(self, path: str) -> bool:
        return os.path.lexists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        if self._leaves(path):
            return []
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def walk(self, top: str, on_problem: WalkProblem) -> Iterator[tuple[str, list[str], list[str]]]:
        if self._leaves(top):
            on_problem(top, "TI108", "a symbolic link, or a folder under one, that leads out of the repository; "
                                     "tiops does not follow it, so its files were not read")
            return iter(())
        return walk(top, on_problem)

    def _leaves(self, path: str) -> bool:
        """Whether the folder ``path`` is, through a symbolic link on its way, outside the repository.

        Folder links inside the intel are never followed (tiops.inputs.walk); the intel or rules folder
        itself, or a folder on its path, may be one (git keeps links), and a pull request must not make
        the machine that checks it read, and report, files elsewhere (tiops.config also says TI110).
        """
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        root, real = self._real_root, os.path.realpath(path)
        try:
            return os.path.commonpath([root, real]) != root
        except ValueError:  # two drives of Windows
            return True

    def blob_id(self, path: str) -> str | None:
        return None  # only known by reading the file: see blob_id_of


def blob_id_of(content: bytes) -> str:
    """The id git gives a blob with this content (SHA-1 of "blob SIZE\\0" and the content)."""
    digest = hashlib.sha1(b"blob %d\0" % len(content), usedforsecurity=False)
    digest.update(content)
    return digest.hexdigest()


# What was parsed from one file: (repository-relative path, blob id) -> parsed document.
# A loader offers every file it parses to a ParsedFiles and asks it before reading a
# file whose blob id it knows, so a second revision does not parse unchanged files again.
class ParsedFiles(Protocol):
    def lookup(self, relative: str, blob_id: str) -> Any:
        """The parsed document, or :data:`NOT_PARSED`."""
        ...

    def offer(self, relative: str, blob_id: str, document: Any) -> None: ...

    def loaded(self, relative: str, blob_id: str, context: Any) -> tuple[list[Any], list[Any]] | None:
        """The (objects, findings) a load made of this file in an equal ``context`` (its defaults), or None."""
        ...

    def offer_loaded(self, relative: str, blob_id: str, context: Any, objects: list[Any], findings: list[Any]) -> None: ...


NOT_PARSED: Any = object()


class SharedParses:
    """Parsed documents kept in memory for the length of one command (tiops diff).

    Keyed by blob id alone: the same bytes parse to the same document wherever they are
    (a renamed file is not parsed again). Documents are shared, not copied: the load stage
    copies every object into its own dict before anything changes it.
    """

    def __init__(self) -> None:
        self._documents: dict[str, Any] = {}
        self._loaded: dict[tuple[str, str], tuple[Any, list[Any], list[Any]]] = {}
        self._equal: dict[tuple[int, int], bool] = {}  # contexts compared, by identity

    def lookup(self, relative: str, blob_id: str) -> Any:
        return self._documents.get(blob_id, NOT_PARSED)

    def offer(self, relative: str, blob_id: str, document: Any) -> None:
        self._documents[blob_id] = document

    def loaded(self, relative: str, blob_id: str, context: Any) -> tuple[list[Any], list[Any]] | None:
        """The same objects, not copies: loaded objects are never changed (the rules copy on write)."""
        entry = self._loaded.get((relative, blob_id))
        if entry is None:
            return None
        earlier, objects, findings = entry
        pair = (id(earlier), id(context))
        equal = self._equal.get(pair)
        if equal is None:  # one folder's files share one context: compared once per folder
            equal = self._equal[pair] = earlier == context
        return (objects, findings) if equal else None

    def offer_loaded(self, relative: str, blob_id: str, context: Any, objects: list[Any], findings: list[Any]) -> None:
        self._loaded[(relative, blob_id)] = (context, objects, findings)

