"""Scaffold new object files (`tiops new`): required properties filled, the rest as hints.

The file is written so that it validates as is: every property STIX 2.1 requires
for the type gets a value (from ``--set``, ``--like`` or a clearly marked
placeholder), and every other property of the type is listed as a comment.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tiops.buildcache import load_intel
from tiops.config import usable_config
from tiops.errors import UsageError
from tiops.findings import Severity
from tiops.jsonschemas import known_properties, property_json_type, stix_validator
from tiops.limits import number_problems
from tiops.load import IntelObject
from tiops.lookup import find_object
from tiops.stix import (
    ALL_TYPES,
    ID_RE,
    SCO_TYPES,
    TIMESTAMP_RE,
    TIOPS_NAMESPACE,
    derive_sco_id,
    requires_created_modified,
)
from tiops.validate.objects import check_object
from tiops.validate.relationships import load_relationship_table
from tiops.yamlio import YamlProblem, dump_yaml, parse_yaml

# Placeholders for required properties beyond the common ones (STIX 2.1 sections 4.x, 5.x).
# They are valid values so the new file validates; the comment above them says to replace them.
PLACEHOLDERS: dict[str, dict[str, Any]] = {
    "indicator": {"pattern": "[ipv4-addr:value = '192.0.2.1']", "pattern_type": "stix"},
    "malware": {"is_family": False},
    "relationship": {"relationship_type": "related-to"},
    "observed-data": {"number_observed": 1},
    "opinion": {"opinion": "neutral"},
    "note": {"content": "TODO"},
    "report": {"published": "TIME"},
    "location": {"region": "northern-europe"},
    "grouping": {"context": "suspicious-activity"},
    "identity": {"identity_class": "organization"},
}
# What "Add and duplicate" carries over from an existing object: its shared metadata.
SHARED_METADATA = ("created_by_ref", "object_marking_refs", "granular_markings", "labels", "confidence", "lang",
                   "external_references")
_COMMON_HIDDEN = {"type", "spec_version", "id", "created", "modified", "extensions", "relationships"}


@dataclass(frozen=True)
class NewObject:
    path: Path
    text: str
    data: dict[str, Any]


def now_timestamp() -> str:
    """The wall clock, for authoring only: building never reads the clock."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def scaffold(root: Path, stix_type: str, *, time: str, settings: dict[str, str] | None = None,
             relationships: list[str] | None = None, like: str | None = None,
             output: Path | None = None, cache: bool = True, for_writing: bool = True) -> NewObject:
    """The new object's file path and text (not written).

    ``for_writing``: refuse an id another file holds (False for --stdout, which writes no file).

    ``cache``: read the intel through the build cache (tiops.buildcache.load_intel).
    """
    if stix_type not in ALL_TYPES or stix_validator(stix_type) is None:
        raise UsageError(f"'{stix_type}' is not a STIX 2.1 object type", hint="For example: indicator, malware, threat-actor.")
    if not TIMESTAMP_RE.match(time):
        raise UsageError(f"--time {time!r} is not a timestamp like 2025-03-04T10:00:00.000Z")
    usable_config(root, "written")  # with errors it would load as every default: the wrong intel folder
    repo = load_intel(root, cache=cache)
    values: dict[str, Any] = {}
    if like is not None:
        # An id, an id prefix or a name, as tiops relate and explain take them.
        original = find_object(repo, like, role="--like")
        values.update({k: original.data[k] for k in SHARED_METADATA if k in original.data})
    for key, raw in (settings or {}).items():
        if key == "type" and raw.strip() != stix_type:
            raise UsageError(f"--set type={raw}: the type is the command's argument ('tiops new {raw.strip()}')",
                             hint="The id, the schema and the folder all follow the type given to 'tiops new'.")
        values[key] = _setting_value(stix_type, key, raw)
        if key == "name" and isinstance(values[key], str) and not values[key].strip():
            # The schema wants one character, and a space is one: the object would validate,
            # be listed and explained as nothing, and have its file named by its id.
            raise UsageError("--set name: the name is empty or only blanks",
                             hint="Give the name the object is known by, e.g. --set 'name=Copper Lantern' "
                                  "(it also names the file).")
    data: dict[str, Any] = {"type": stix_type}
    if stix_type not in SCO_TYPES:
        data["spec_version"] = "2.1"
    seed = f"new|{stix_type}|{time}|{sorted(values.items(), key=lambda kv: kv[0])!r}"
    data["id"] = values.pop("id", f"{stix_type}--{uuid.uuid5(TIOPS_NAMESPACE, seed)}")
    if requires_created_modified(stix_type):
        data["created"] = values.pop("created", time)
        data["modified"] = values.pop("modified", time)
    placeholders = {k: (time if v == "TIME" else v) for k, v in PLACEHOLDERS.get(stix_type, {}).items()}
    required = _required(stix_type)
    placeholder_keys: list[str] = []
    for name in sorted(required - set(data) - set(values)):
        if name in placeholders:
            values[name] = placeholders[name]
        elif name in ("valid_from", "first_observed", "last_observed", "published", "created"):
            values[name] = time
        elif name.endswith(("_ref", "_refs")):
            raise UsageError(f"{stix_type} needs '{name}': give it with --set {name}=ID")
        else:
            values[name] = f"TODO: {name}"
        placeholder_keys.append(name)
    if stix_type == "location" and not {"region", "country", "latitude"} & set(values):
        # Section 4.10: a location needs region, country, or latitude and longitude.
        values["region"] = placeholders["region"]
        placeholder_keys.append("region")
    data.update(values)
    if stix_type in SCO_TYPES and "id" not in (settings or {}):
        # STIX 2.1 section 2.9: an SCO's id comes from its id-contributing properties, so the
        # same observable authored twice is one object, whoever wrote it.
        data["id"] = derive_sco_id({k: v for k, v in data.items() if k != "id"})
    _refuse_placeholders_that_fail(stix_type, data, placeholder_keys)
    _check_set_references(repo, stix_type, data, set(settings or {}))
    entries = [_relationship(repo, text) for text in relationships or []]
    if entries:
        _check_relationship_entries(repo, stix_type, entries)
        data["relationships"] = entries
    _check_settings(data, set(settings or {}))
    text = _render(stix_type, data, placeholder_keys)
    path = output if output is not None else _default_path(root, repo, stix_type, data)
    partner = _imported_folder_of(root, path)
    if partner is not None:
        raise UsageError(f"{path} is in {partner}, a folder 'tiops import' writes: partner intel is read-only",
                         hint="Write objects of your own in a folder outside the imported source's folder.")
    held = next((obj for obj in repo.objects if obj.id == data["id"]), None) if for_writing else None
    if held is not None:
        # The id follows the type, the time and the --set values: the same three give the same id,
        # and a second file with it would be a duplicate id (TI302) in the next validate.
        raise UsageError(f"{data['id']} is already defined in {held.file}",
                         hint="Edit that file, or give this object another --time, other --set values "
                              "or its own --set id=... ." if stix_type not in SCO_TYPES else
                              "The same observable is one object (STIX 2.1 section 2.9): edit that file.")
    return NewObject(path=path, text=text, data=data)


def _imported_folder_of(root: Path, path: Path) -> str | None:
    """The imported source folder (its _defaults.yaml says ``imported: true``) that holds ``path``, if any."""
    from tiops.yamlio import YamlProblem, parse_yaml

    root = root.resolve()
    folder = (path if path.is_absolute() else Path.cwd() / path).resolve().parent
    while folder.is_relative_to(root) and folder != root:
        defaults = folder / "_defaults.yaml"
        if defaults.is_file():
            try:
                data = parse_yaml(defaults.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, YamlProblem):
                data = None
            if isinstance(data, dict) and data.get("imported") is True:
                return folder.relative_to(root).as_posix()
        folder = folder.parent
    return None


def _required(stix_type: str) -> set[str]:
    validator = stix_validator(stix_type)
    required: set[str] = set()
    try:
        probe = {"type": stix_type}
        for error in validator.iter_errors(probe):  # type: ignore[union-attr]
            if list(error.schema_path)[-1:] == ["required"]:
                match = re.match(r'"([^"]+)" is a required', error.message)
                if match:
                    required.add(match.group(1))
    except Exception:
        pass
    return required - {"type"}


def _scalar(raw: str) -> Any:
    try:
        return parse_yaml(raw)
    except YamlProblem:
        return raw


def _setting_value(stix_type: str, key: str, raw: str) -> Any:
    """A ``--set`` value read the way the type's schema declares the property.

    A string property keeps the text as given (every STIX pattern starts with '[', which
    YAML would read as a list) unless it is a quoted YAML string; a list property takes
    one bare value as a one-item list; other properties are read as YAML.
    """
    kind = property_json_type(stix_type, key)
    if kind != "string" and raw.lstrip()[:1] in ("[", "{"):
        # A list or mapping with a number YAML 1.2 reads as text ([_1, 0b1]: TI116) would otherwise be
        # kept as its own text, one label "[_1, 0b1]": said instead, as it is in a file.
        try:
            parse_yaml(raw)
        except YamlProblem as problem:
            if problem.code == "TI116":
                raise UsageError(f"--set {key}: {problem.message}",
                                 hint=f"Quote each text item, e.g. --set \"{key}=['_1']\".") from None
    parsed = _scalar(raw)
    for _, reason in number_problems(parsed if isinstance(parsed, (dict, list)) else [parsed]):
        # Refused here: the object's id is seeded from the values, and Python cannot even write
        # an integer of more than 4,300 digits.
        raise UsageError(f"--set {key}: {reason}", hint="STIX integers lie within +-(2^53-1) (STIX 2.1 section 2.16).")
    if kind == "string":
        return parsed if isinstance(parsed, str) and raw.strip()[:1] in ("'", '"') else raw
    if kind == "array" and not isinstance(parsed, list) and parsed is not None:
        return [parsed if isinstance(parsed, str) else raw]
    return parsed


def _check_settings(data: dict[str, Any], keys: set[str]) -> None:
    """Refuse, before anything is written, a ``--set`` value the object's checks reject."""
    if not keys:
        return
    problems = []
    for finding in check_object(IntelObject(data=data, file="--set")):
        key = finding.location.path[0] if finding.location.path else None
        if key in keys and finding.severity is Severity.ERROR:
            problems.append(finding.message if finding.message.startswith(f"{key}:") else f"{key}: {finding.message}")
    if problems:
        raise UsageError("--set: " + "; ".join(sorted(problems)),
                         hint="Give each --set value the type STIX 2.1 gives the property, e.g. confidence=80 (an integer from 0 to 100).")


def _refuse_placeholders_that_fail(stix_type: str, data: dict[str, Any], placeholder_keys: list[str]) -> None:
    """Refuse a scaffold that would not validate: a required value no placeholder can stand for
    (an SCO's value, an autonomous system's number) must be given with --set."""
    failing = sorted({str(finding.location.path[0]) for finding in check_object(IntelObject(data=data, file="new"))
                      if finding.severity is Severity.ERROR and finding.location.path
                      and finding.location.path[0] in placeholder_keys})
    unnamed = [f.message for f in check_object(IntelObject(data=data, file="new"))
               if f.severity is Severity.ERROR and not f.location.path]
    if failing:
        raise UsageError(f"tiops new {stix_type}: {', '.join(failing)} has no placeholder that validates; give "
                         + " ".join(f"--set {name}=..." for name in failing),
                         hint=f"The {stix_type} properties STIX 2.1 requires are in docs/format.md and the spec.")
    if unnamed:
        raise UsageError(f"tiops new {stix_type}: the new object would not validate: {unnamed[0][:200]}",
                         hint="Give the properties it needs with --set NAME=VALUE (STIX 2.1 lists them per type).")


def _check_set_references(repo: Any, stix_type: str, data: dict[str, Any], keys: set[str]) -> None:
    """The ids --set gives must be objects of the repository (or built in), and a relationship's ends
    allowed by the relationship table: what 'tiops relate' and --relationship check, before writing."""
    from tiops.stix import BUILTIN_REFERENCE_TYPES

    types = {**BUILTIN_REFERENCE_TYPES, **{obj.id: obj.type for obj in repo.objects}}
    problems = []
    for key in sorted(k for k in keys if k.endswith(("_ref", "_refs"))):
        values = data.get(key)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str) and value not in types:
                problems.append(f"{key}={value}: no object with that id in the repository")
    source, target, kind = data.get("source_ref"), data.get("target_ref"), data.get("relationship_type")
    if (not problems and stix_type == "relationship" and {"source_ref", "target_ref"} <= keys
            and isinstance(source, str) and isinstance(target, str) and isinstance(kind, str)):
        problem = _triple_problem(load_relationship_table(repo.config)[0], types[source], kind, types[target])
        if problem is not None:
            problems.append(problem)
    if problems:
        raise UsageError("--set: " + "; ".join(problems), hint="Check the ids (tiops query ... --format ids lists them), "
                                                               "or the relationship table.")


def _relationship(repo: Any, text: str) -> dict[str, str]:
    kind, sep, target = text.partition(":")
    if not sep or not kind or not target.strip():
        raise UsageError(f"--relationship {text!r} is not TYPE:TARGET",
                         hint="For example: --relationship indicates:malware--… or indicates:WickStealer (an id, "
                              "an id prefix or a name).")
    if "--" in target and target in {obj.id for obj in repo.objects}:
        return {kind: target}
    if "--" in target and ID_RE.match(target):
        return {kind: target}  # a full id no object has: said by the check of the entries
    return {kind: find_object(repo, target, role=f"--relationship {kind}:").id}


def _check_relationship_entries(repo: Any, stix_type: str, entries: list[dict[str, str]]) -> None:
    """Every --relationship target must exist and every triple be allowed, as `tiops relate` checks."""
    types = {obj.id: obj.type for obj in repo.objects}
    table, _ = load_relationship_table(repo.config)
    problems = []
    for entry in entries:
        [(kind, target)] = entry.items()
        if target not in types:
            problems.append(f"{kind}:{target}: no object with that id in the repository")
        elif (problem := _triple_problem(table, stix_type, kind, types[target])) is not None:
            problems.append(f"{kind}:{target}: {problem}")
    if problems:
        raise UsageError("--relationship: " + "; ".join(problems), hint=f"Check the ids, or the table in {table.file}.")


def _triple_problem(table: Any, source_type: str, kind: str, target_type: str) -> str | None:
    """Why the relationship table refuses SOURCE --KIND--> TARGET, or None."""
    if table.allows(source_type, kind, target_type):
        return None
    allowed = ", ".join(table.allowed_types_between(source_type, target_type)) or "none"
    return f"{source_type} --{kind}--> {target_type} is not in the relationship table (allowed: {allowed})"


def _render(stix_type: str, data: dict[str, Any], placeholder_keys: list[str]) -> str:
    lines = [f"# New {stix_type}. Required properties are filled in; replace any TODO or example value."]
    if placeholder_keys:
        lines.append(f"# Placeholder values to replace: {', '.join(placeholder_keys)}")
    body = dump_yaml(data)
    hints = sorted(known_properties(stix_type) - set(data) - _COMMON_HIDDEN)
    hint_lines = ["# Optional properties (STIX 2.1):"] + [f"# {name}:" for name in hints]
    return "\n".join(lines) + "\n" + body + "\n".join(hint_lines) + "\n"


def default_folder_name(stix_type: str) -> str:
    """The folder a type gets when the repository has none for it yet: the English plural."""
    if stix_type in _FOLDER_NAMES:
        return _FOLDER_NAMES[stix_type]
    head, _, last = stix_type.rpartition("-")
    if last in _UNCOUNTABLE:
        plural = last
    elif last.endswith("y") and last[-2:-1] not in tuple("aeiou"):
        plural = last[:-1] + "ies"
    elif last.endswith("sis"):
        plural = last[:-3] + "ses"
    elif last.endswith(("s", "x", "sh", "ch")):
        plural = last + "es"
    else:
        plural = last + "s"
    return f"{head}-{plural}" if head else plural


# Types whose folder is not simply the plural of the last word.
_FOLDER_NAMES = {"course-of-action": "courses-of-action"}
_UNCOUNTABLE = frozenset({"malware", "infrastructure", "data", "software"})


def team_folder(root: Path, repo: Any, stix_type: str) -> Path:
    """Where the team keeps this type: the folder holding most of the team's objects of it
    (partner folders written by `tiops import` are read-only and never count), else the
    type's default folder (:func:`default_folder_name`)."""
    folders = Counter(Path(obj.file).parent for obj in repo.objects
                      if obj.type == stix_type and obj.declared_by is None and obj.imported_folder is None)
    # Most objects wins; a tie goes to the shortest, then alphabetically first, folder.
    ranked = sorted(folders.items(), key=lambda item: (-item[1], len(item[0].parts), item[0].as_posix()))
    return root / ranked[0][0] if ranked else repo.config.intel_path / default_folder_name(stix_type)


def file_stem(text: str) -> str:
    """A file name from a name: lowercase words joined by hyphens, accents taken off their letters
    (Schädling -> schadling: NFKD splits a letter from its accent) rather than the letter dropped."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def _default_path(root: Path, repo: Any, stix_type: str, data: dict[str, Any]) -> Path:
    folder = team_folder(root, repo, stix_type)
    name = data.get("name") if isinstance(data.get("name"), str) and not str(data.get("name")).startswith("TODO") else None
    stem = file_stem(name) if name else ""
    return folder / f"{stem or data['id'].split('--', 1)[1][:8]}.yaml"
