"""tiops.yaml: where intel and rules live, where output goes, and the named targets."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tiops.codes import make_finding
from tiops.errors import TiopsError
from tiops.filesource import FileSource, WorkingTree
from tiops.findings import Finding, Location, Severity
from tiops.inputs import InputProblem
from tiops.jsonschemas import tiops_schema_errors
from tiops.redact import public_url, redact
from tiops.yamlio import YamlProblem, parse_yaml

CONFIG_FILE = "tiops.yaml"
DEFAULT_TARGET = "local"


@dataclass(frozen=True)
class Config:
    root: Path
    intel_dir: str = "intel"
    rules_dir: str = "rules"
    output_dir: str = "dist"
    default_target: str = DEFAULT_TARGET
    targets: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {DEFAULT_TARGET: {"type": "sqlite", "path": ".tiops/store.sqlite"}}
    )
    strict: bool = False
    deleted_objects: str = "warning"  # or "error": TI803 in `tiops validate --base`
    # `tiops import taxii`: [{url: PREFIX, username_env: NAME, password_env: NAME}] (names, never secrets)
    taxii_credentials: tuple[dict[str, str], ...] = ()
    # `tiops enrich`: {geo: {...}, rdap: {...}} (docs/enrich.md)
    enrichment: dict[str, Any] = field(default_factory=dict)
    # Relationship tables tiops ships, added to STIX 2.1 Appendix B (docs/format.md): "attack".
    relationship_tables: tuple[str, ...] = ()
    # Where the repository's files are read from (None: the working tree at root).
    source: FileSource | None = field(default=None, compare=False, repr=False)

    @property
    def files(self) -> FileSource:
        return self.source if self.source is not None else WorkingTree(self.root)

    @property
    def intel_path(self) -> Path:
        return self.root / self.intel_dir

    @property
    def rules_path(self) -> Path:
        return self.root / self.rules_dir


def load_config(root: Path, source: FileSource | None = None) -> tuple[Config, list[Finding]]:
    """Read ``tiops.yaml`` under ``root`` (from ``source``, default the working tree); a missing file means every default."""
    files = source if source is not None else WorkingTree(root)
    path = os.fspath(root / CONFIG_FILE)
    if not files.lexists(path):
        return Config(root=root, source=source), []
    location = Location(CONFIG_FILE, 1, 1)
    try:
        data = parse_yaml(files.read(path).decode("utf-8"))
    except InputProblem as problem:
        return Config(root=root, source=source), [make_finding(problem.code, problem.message, location)]
    except UnicodeDecodeError:
        return Config(root=root, source=source), [make_finding("TI106", "tiops.yaml is not UTF-8", location)]
    except YamlProblem as problem:
        return Config(root=root, source=source), [
            make_finding(problem.code, problem.message, Location(CONFIG_FILE, problem.line, problem.column))
        ]
    data = {} if data is None else data
    findings = [
        make_finding("TI110", _shown_schema_message(error_path, message), Location(CONFIG_FILE, path=error_path))
        for error_path, message in tiops_schema_errors("config", data)
    ]
    if findings or not isinstance(data, dict):
        return Config(root=root, source=source), findings
    findings.extend(_outside_folders(root, data))
    findings.extend(_rdap_url_problems(data.get("enrichment") or {}))
    if findings:
        return Config(root=root, source=source), findings
    targets = {DEFAULT_TARGET: {"type": "sqlite", "path": ".tiops/store.sqlite"}}
    targets.update(data.get("targets") or {})
    findings.extend(_deprecated_keys(targets))
    validation = data.get("validation") or {}
    return (
        Config(
            root=root,
            intel_dir=data.get("intel", "intel"),
            rules_dir=data.get("rules", "rules"),
            output_dir=data.get("output", "dist"),
            default_target=data.get("default_target", DEFAULT_TARGET),
            targets=targets,
            strict=bool(validation.get("strict", False)),
            deleted_objects=str(validation.get("deleted_objects", "warning")),
            taxii_credentials=tuple(data.get("taxii_credentials") or ()),
            enrichment=dict(data.get("enrichment") or {}),
            relationship_tables=tuple(data.get("relationship_tables") or ()),
            source=source,
        ),
        findings,
    )


def usable_config(root: Path, doing: str) -> Config:
    """The configuration under ``root`` for a command that acts on it (``doing``: what it would
    do, for the message); TiopsError when ``tiops.yaml`` has an error.

    A file with errors loads as every default (:func:`load_config`), so such a command would
    write into the default ``intel/`` rather than the folder named, or ask public servers
    instead of the ones named. Commands that build refuse through validation anyway.
    """
    config, findings = load_config(root)
    errors = [finding for finding in findings if finding.severity is Severity.ERROR]
    if errors:
        where = errors[0].location
        place = f"{where.file}:{where.line}" if where.line else where.file
        raise TiopsError(f"{place}: {errors[0].message}; nothing was {doing}",
                         hint="Run 'tiops validate' to see every finding, and fix tiops.yaml first.")
    return config


def is_http_url(text: str) -> bool:
    """Whether ``text`` is an http:// or https:// URL with a host, whose port (if any) is a
    number: what RDAP (RFC 7480 section 3) and TAXII (TAXII 2.1 section 1.6.2) servers are."""
    try:
        parts = urlsplit(text)
        _ = parts.port  # reading it raises for a port that is no number
    except ValueError:  # a bracketed host left open, a port out of range
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _outside_folders(root: Path, data: dict[str, Any]) -> list[Finding]:
    """TI110 for an ``intel`` or ``rules`` folder outside the repository or inside a folder tiops never reads
    as input, and for a SQLite target whose file would be one of those folders or hold them.

    They are the repository's own files. A path leaving it (``/etc``, ``../other``) would make
    a pull request that edits tiops.yaml read files elsewhere on the machine that checks it,
    and report what it finds in them into a public CI log. ``.git/`` is git's and ``.tiops/``
    tiops' own state (its store, caches and the last build's record): what a plan checks for
    change leaves both out (tiops.lastbuild), so intel kept there would never reach a store.
    A store's path is a file: one naming the intel folder (or the root) cannot be opened as a store, and
    what a plan checks for change leaves store files out.
    """
    found = []
    base = os.path.abspath(root)  # normalised; '.' too, whose common path with 'intel' is ''
    read: list[str] = []
    for key in ("intel", "rules"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            value = key  # the default folder
        folder = os.path.normpath(os.path.join(base, value))
        if os.path.isabs(value) or os.path.commonpath([base, folder]) != base:
            found.append(make_finding("TI110", f"{key}: {value!r} is outside the repository; {key} is a folder "
                                               "of the repository, relative to tiops.yaml",
                                      Location(CONFIG_FILE, path=(key,))))
            continue
        # The folder itself, or a folder on its path, may be a symbolic link (git keeps links): the walk
        # starts from the folder it leads to, so that folder must be the repository's too.
        real_base, real_folder = os.path.realpath(base), os.path.realpath(folder)
        if not _holds(real_base, real_folder):
            found.append(make_finding("TI110", f"{key}: {value!r} leads, through a symbolic link, to a folder "
                                               f"outside the repository; {key} is a folder of the repository",
                                      Location(CONFIG_FILE, path=(key,))))
            continue
        read.append(folder)
        # Case folded: a file system that ignores case (macOS, Windows) reads .GIT/intel from .git/.
        state = next((name for name in _STATE_FOLDERS
                      if name in (os.path.relpath(folder, base).split(os.sep)[0].casefold(),
                                  os.path.relpath(real_folder, real_base).split(os.sep)[0].casefold())), None)
        if state is not None:
            found.append(make_finding("TI110", f"{key}: {value!r} is inside {state}/, which holds "
                                               f"{_STATE_FOLDERS[state]} and is never read as input; keep the "
                                               f"{key} folder elsewhere in the repository",
                                      Location(CONFIG_FILE, path=(key,))))
    targets = data.get("targets")
    for name, target in (targets.items() if isinstance(targets, dict) else ()):
        path = target.get("path") if isinstance(target, dict) and target.get("type") == "sqlite" else None
        if not isinstance(path, str) or not path:
            continue
        store = os.path.normpath(os.path.join(base, path))
        if any(_holds(store, folder) for folder in read):
            found.append(make_finding("TI110", f"targets.{name}.path: {path!r} names a folder a build reads (the "
                                               "intel or rules, or one holding them); the SQLite store is a file "
                                               "an apply writes (the default is .tiops/store.sqlite)",
                                      Location(CONFIG_FILE, path=("targets", name, "path"))))
    return found


def _holds(outer: str, inner: str) -> bool:
    """Whether the folder ``outer`` is ``inner`` or holds it (False for paths on two drives of Windows)."""
    try:
        return os.path.commonpath([outer, inner]) == outer
    except ValueError:
        return False


#: The repository's folders that hold state, not input, and what they hold.
_STATE_FOLDERS = {".git": "git's own data", ".tiops": "tiops' own state (its store, caches and records)"}


def _shown_schema_message(path: tuple[str | int, ...], message: str) -> str:
    """A schema message as shown: it quotes the value, and a DSN, token or password written where the
    name of an environment variable goes (``dsn_env``, ``token_env``...) must not be printed."""
    if path and isinstance(path[-1], str) and path[-1].endswith("_env"):
        return (f"{path[-1]} names an environment variable (letters, digits and _), not its value: "
                "the value written there is not shown, in case it is the secret itself")
    return redact(message)


def _rdap_url_problems(enrichment: dict[str, Any]) -> list[Finding]:
    """TI110 for an RDAP server or bootstrap URL that is not an http(s) URL with a host: RDAP
    runs over HTTP only (RFC 7480 section 3), and a folder of bootstrap files has no scheme."""
    rdap = enrichment.get("rdap") or {}
    found = []
    for key in ("base_url", "bootstrap"):
        value = rdap.get(key)
        if not isinstance(value, str) or (key == "bootstrap" and not _URL_SCHEME.match(value)):
            continue
        if not is_http_url(value):
            found.append(make_finding("TI110", f"enrichment.rdap.{key}: {redact(value)!r} is not an http:// or https:// URL "
                                               "with a host (RDAP runs over HTTP, RFC 7480 section 3)",
                                      Location(CONFIG_FILE, path=("enrichment", "rdap", key))))
        elif _user_without_password(value):
            # requests sends URL credentials only as user:password: a token written as the user
            # alone would go nowhere, and every answer be a 401 recorded as failed. The advice names
            # no 'user:password@', which redaction masks where the message is shown (tiops enrich).
            found.append(make_finding("TI110", f"enrichment.rdap.{key}: {public_url(value)!r} carries a user name but no "
                                               "password, which is not sent; write a colon and the password after the user "
                                               "name ('user:@', a colon alone, for an empty one, RFC 7617)",
                                      Location(CONFIG_FILE, path=("enrichment", "rdap", key))))
        elif (problem := credentials_problem(value)) is not None:
            found.append(make_finding("TI110", f"enrichment.rdap.{key}: {problem}",
                                      Location(CONFIG_FILE, path=("enrichment", "rdap", key))))
    return found


def credentials_problem(url: str) -> str | None:
    """Why the credentials of ``url`` would go astray (None when they would not), the URL quoted masked.

    RFC 3986 section 3.2: the authority ends at the first '/', '?' or '#', and the userinfo at the
    last '@' before it. A password holding one of those written as is ("alice:Pw@host:1/Tail@rdap.example",
    "user:p@ss/wo#rd@rdap.example") leaves an '@' after the authority: the credentials, part of the
    password, would be sent to another host than meant, and the rest of the password kept in the
    lock's ``server``. A URL with credentials and an '@' after its host is refused.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    prefix = f"{parts.scheme}://{parts.netloc}"
    if "@" not in parts.netloc or not url.startswith(prefix) or "@" not in url[len(prefix):]:
        return None
    user, colon, _ = parts.netloc.rpartition("@")[0].partition(":")
    login = f"{user}:***" if colon else "***"  # a user name alone is the credential (TOKEN@host)
    masked = f"{parts.scheme}://{login}@{_PRINTABLE_URL.sub('?', url.rpartition('@')[2])[:200]}"
    return (f"{masked!r} carries credentials and an '@' after its host: its password holds an '@', '/', '?' or '#' "
            "written as is, and the credentials would go to another host than meant; not used")


# What of a URL a message quotes: printable ASCII, no quote that would end the quoting.
_PRINTABLE_URL = re.compile(r"[^!#-&(-~]")


def _user_without_password(url: str) -> bool:
    netloc = urlsplit(url).netloc
    return "@" in netloc and ":" not in netloc.rpartition("@")[0]


# A URL's scheme (RFC 3986 section 3.1) at the start of a value that may also be a folder.
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


# Old key -> the key every TAXII credential now uses (the one `tiops import taxii` always used).
DEPRECATED_TARGET_KEYS = {"user_env": "username_env"}


def _deprecated_keys(targets: dict[str, dict[str, Any]]) -> list[Finding]:
    found = []
    for name, entry in sorted(targets.items()):
        for old, new in DEPRECATED_TARGET_KEYS.items():
            if isinstance(entry, dict) and old in entry:
                found.append(make_finding("TI130", f"targets.{name}.{old} is the old spelling; write {new}, as in taxii_credentials",
                                          Location(CONFIG_FILE, path=("targets", name, old))))
    return found
