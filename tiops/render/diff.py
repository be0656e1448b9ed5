"""Renderers for `tiops diff`: text for a terminal, markdown for a pull-request comment, json for tools."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tiops.diff import Diff, EnrichmentChange, FieldDiff, ObjectChange, ObjectRef, RelationshipRef
from tiops.render.markdown import markdown_code, markdown_text
from tiops.render.names import printable

# GitHub refuses comments over 65,536 characters; stay well under it with room for the footer.
MARKDOWN_LIMIT = 60_000
_VALUE_WIDTH = 120
_CONTEXT = 40  # characters shown before the first that differs, when a value is cut
# An enrichment result new to the head, gone from it, or changed (tiops.diff.EnrichmentChange.state),
# marked as the object lines above mark added, removed and changed objects.
_ENRICHMENT_MARKS = {"added": "+", "removed": "-", "changed": "~"}


def render_text(diff: Diff) -> str:
    lines = [f"tiops diff {diff.base} -> {diff.head}"]
    lines += [f"note: {note}" for note in diff.notes]
    if diff.empty:
        lines.append("No change to the compiled intel.")
        return "\n".join(lines) + "\n"
    for ref in diff.added:
        lines.append(f"  + {ref.type} {ref.id} {ref.name!r}")
    for change in diff.changed:
        lines.append(f"  ~ {change.ref.type} {change.ref.id} {change.ref.name!r}")
        lines += [f"      {_field_line(f)}" for f in change.fields]
    for change in diff.revoked:
        lines.append(f"  ! revoked {change.ref.type} {change.ref.id} {change.ref.name!r}")
    for ref in diff.removed:
        lines.append(f"  - {ref.type} {ref.id} {ref.name!r}")
    for rel in diff.relationships_added:
        lines.append(f"  + relationship {_relationship_line(rel)}")
    for rel in diff.relationships_removed:
        lines.append(f"  - relationship {_relationship_line(rel)}")
    for effect in diff.effects:
        lines.append(f"  * {effect.cause}: {len(effect.changes)} object(s) compile differently")
        for change in effect.changes:
            lines.append(f"      {change.ref.type} {change.ref.id} {change.ref.name!r}")
            lines += [f"          {_field_line(f)}" for f in change.fields]
    if diff.enrichment:
        lines.append("  enrichment (intel/.enrichment/ lock):")
    for result in diff.enrichment:
        lines.append(f"    {_ENRICHMENT_MARKS[result.state]} {result.ref.type} {printable(result.ref.name)}")
        lines += [f"        {_field_line(f)}" for f in result.fields]
    lines.append(_summary_sentence(diff))
    # Each line is one line: a rule's name, a note or a custom type from intel with a control
    # character or a line break in it is written out (names already are, quoted by repr).
    return "\n".join(printable(line) for line in lines) + "\n"


def render_markdown(diff: Diff, limit: int = MARKDOWN_LIMIT) -> str:
    """A pull-request comment: a summary table, then one collapsible section per kind of change."""
    head = [f"### tiops diff {_code(diff.base)} → {_code(diff.head)}", ""]
    head += [f"> ⚠️ {markdown_text(note)}" for note in diff.notes]
    if diff.notes:
        # A blank line ends the quote: without it, CommonMark reads the table after as more of it
        # (a paragraph continuation line), and the summary is lost inside the warning.
        head.append("")
    if diff.empty:
        return "\n".join([*head, "No change to the compiled intel.", ""])
    counts = diff.counts()
    head += ["| Change | Objects |", "| --- | ---: |"]
    labels = {"added": "Added", "changed": "Changed", "revoked": "Revoked", "removed": "Removed (not revoked)",
              "relationships_added": "Relationships added", "relationships_removed": "Relationships removed",
              "rule_effects": "Compiled differently by a rule, defaults or an overlay", "enrichment": "Enrichment results (values)"}
    head += [f"| {labels[key]} | {value} |" for key, value in counts.items() if value]
    head.append("")
    sections: list[tuple[str, list[str]]] = [
        ("Added", [f"- {_ref_md(r)}" for r in diff.added]),
        ("Changed", [line for c in diff.changed for line in _change_md(c)]),
        ("Revoked", [line for c in diff.revoked for line in _change_md(c)]),
        ("Removed (not revoked)", [f"- {_ref_md(r)}" for r in diff.removed]),
        ("Relationships added", [f"- {_relationship_md(r)}" for r in diff.relationships_added]),
        ("Relationships removed", [f"- {_relationship_md(r)}" for r in diff.relationships_removed]),
    ]
    for effect in diff.effects:
        sections.append((f"Effect of {effect.cause}", [line for c in effect.changes for line in _change_md(c)]))
    sections.append(("Enrichment (lock refresh)", [line for c in diff.enrichment for line in _enrichment_md(c)]))
    out = "\n".join(head) + "\n"
    left_out = 0
    for title, body in sections:
        if not body:
            continue
        opening = f"<details><summary>{markdown_text(title)} ({_count_items(body)})</summary>\n\n"
        block = opening + "\n".join(body) + "\n\n</details>\n\n"
        if len(out) + len(block) > limit:
            # Show the items that fit (an item is its "- " line and the field lines under it), not none:
            # a big section is the one a reviewer most needs to see the start of.
            closing, room = "\n\n</details>\n\n", limit - len(out) - len(opening) - 200  # 200: the last line
            kept: list[str] = []
            item: list[str] = []
            for line in [*body, "- "]:
                if line.startswith("- ") and item:
                    if sum(len(x) + 1 for x in (*kept, *item)) + len(closing) > room:
                        break
                    kept += item
                    item = []
                item.append(line)
            left_out += _count_items(body) - _count_items(kept)
            if kept:
                out += opening + "\n".join(kept) + closing
            continue
        out += block
    if left_out:
        out += f"_{left_out} more item(s) left out to fit a comment; run `tiops diff` locally for the full list._\n"
    return out


def render_json(diff: Diff) -> str:
    data: dict[str, Any] = {
        "base": diff.base,
        "head": diff.head,
        "counts": diff.counts(),
        "notes": list(diff.notes),
        "added": [_ref_json(r) for r in diff.added],
        "changed": [_change_json(c) for c in diff.changed],
        "revoked": [_change_json(c) for c in diff.revoked],
        "removed": [_ref_json(r) for r in diff.removed],
        "relationships_added": [_relationship_json(r) for r in diff.relationships_added],
        "relationships_removed": [_relationship_json(r) for r in diff.relationships_removed],
        "rule_effects": [{"cause": e.cause, "objects": [_change_json(c) for c in e.changes]} for e in diff.effects],
        "enrichment": [{**_change_json(c), "state": c.state} for c in diff.enrichment],
    }
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


DIFF_RENDERERS: dict[str, Callable[[Diff], str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "json": render_json,
}


# The text summary's words for Diff.counts keys that do not read as their key does ("rule_effects"
# counts objects a rule, a _defaults.yaml or a partner overlay compiles differently).
_SUMMARY_WORDS = {"rule_effects": "compiled differently by rules, defaults or overlays"}


def _summary_sentence(diff: Diff) -> str:
    counts = diff.counts()
    return ("Summary: " + ", ".join(f"{value} {_SUMMARY_WORDS.get(key, key.replace('_', ' '))}"
                                    for key, value in counts.items()) + ".")


def _shown(value: Any) -> str:
    # JSON escapes C0 controls but not C1 ones or the bidirectional overrides (Trojan Source), which
    # RDAP answers and partner intel may hold: none may reorder or recolour the reviewer's line.
    return "(absent)" if value is None else printable(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())


def _short_pair(before: Any, after: Any) -> tuple[str, str]:
    """The two values as a reviewer reads them, each cut to _VALUE_WIDTH around where they first differ.

    Cut from the start alone, a description a feed changed near its end showed the same
    120 characters on both sides of the arrow: the window starts a little before the first
    character that differs, with an ellipsis for what is left out on either side.
    """
    old, new = _shown(before), _shown(after)
    if len(old) <= _VALUE_WIDTH and len(new) <= _VALUE_WIDTH:
        return old, new
    same = 0
    for a, b in zip(old, new, strict=False):
        if a != b:
            break
        same += 1
    start = max(0, same - _CONTEXT)
    return _window(old, start), _window(new, start)


def _window(text: str, start: int) -> str:
    if len(text) <= _VALUE_WIDTH and start == 0:
        return text
    lead = "…" if start > 0 else ""
    room = _VALUE_WIDTH - len(lead)
    rest = text[start:]
    return lead + (rest if len(rest) <= room else rest[: room - 1] + "…")


def _field_line(change: FieldDiff) -> str:
    old, new = _short_pair(change.before, change.after)
    return f"{change.field}: {old} -> {new}"


def _relationship_line(rel: RelationshipRef) -> str:
    return f"{rel.source_name!r} {rel.relationship_type} {rel.target_name!r} ({rel.id})"


def _code(text: str) -> str:
    return markdown_code(text, in_table=False)


def _ref_md(ref: ObjectRef) -> str:
    # The type and id as code, escaped as any text: a compiled object's may hold a backtick (invalid
    # STIX is compiled and diffed too), which raw in backticks would end the span and open markup.
    return f"**{markdown_text(ref.name)}** {_code(ref.type)} {_code(ref.id)}"


def _change_md(change: ObjectChange) -> list[str]:
    lines = [f"- {_ref_md(change.ref)}"]
    for field in change.fields:
        old, new = _short_pair(field.before, field.after)
        lines.append(f"  - {_code(field.field)}: {markdown_text(old)} → {markdown_text(new)}")
    return lines


def _enrichment_md(change: EnrichmentChange) -> list[str]:
    # A value is its own name and id: shown once, with its section and what happened to its result.
    lines = _change_md(change)
    lines[0] = f"- **{markdown_text(change.ref.name)}** `{change.ref.type}` ({change.state})"
    return lines


def _count_items(body: list[str]) -> int:
    return sum(1 for line in body if line.startswith("- "))


def _relationship_md(rel: RelationshipRef) -> str:
    return f"**{markdown_text(rel.source_name)}** _{markdown_text(rel.relationship_type)}_ **{markdown_text(rel.target_name)}** {_code(rel.id)}"


def _ref_json(ref: ObjectRef) -> dict[str, Any]:
    return {"id": ref.id, "type": ref.type, "name": ref.name}


def _change_json(change: ObjectChange) -> dict[str, Any]:
    return {**_ref_json(change.ref), "fields": [{"field": f.field, "before": f.before, "after": f.after} for f in change.fields]}


def _relationship_json(rel: RelationshipRef) -> dict[str, Any]:
    return {"id": rel.id, "source_ref": rel.source_ref, "relationship_type": rel.relationship_type,
            "target_ref": rel.target_ref, "source_name": rel.source_name, "target_name": rel.target_name}
