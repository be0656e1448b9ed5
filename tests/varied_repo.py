"""Repositories of every kind of object file, for comparing a load shared with a forked helper with one process's."""

from __future__ import annotations

import json
from pathlib import Path

from tiops.pipeline import ValidationFailed, build
from tiops.validate.partner import object_digest
from tiops.yamlio import parse_yaml

_INDICATOR = ("type: indicator\nspec_version: '2.1'\nid: indicator--{n:08d}-0d66-4b5e-9b4a-2f7f1e3a1a11\n"
              "created: '2025-01-01T00:00:00.000Z'\nmodified: '2025-01-01T00:00:00.000Z'\n"
              "pattern: \"[ipv4-addr:value = '203.0.113.{m}']\"\npattern_type: stix\nvalid_from: '2025-01-01T00:00:00Z'\n"
              "external_references: [{{source_name: feed, external_id: '{n}'}}]\n")


def partner_folder(root: Path) -> Path:
    """Imported intel with an overlay that changes one of its objects."""
    partner = root / "intel" / "partner"
    partner.mkdir(parents=True)
    (partner / "_defaults.yaml").write_text("imported: true\nsource: Partner\n")
    (partner / "_overlay.yaml").write_text("indicator--00000003-0d66-4b5e-9b4a-2f7f1e3a1a11:\n  confidence: 10\n"
                                           "  labels: [overlaid]\n")
    digests = {}
    for n in range(3, 9):
        text = _INDICATOR.format(n=n, m=n)
        (partner / f"partner-{n}.yaml").write_text(text)
        data = parse_yaml(text)
        digests[data["id"]] = object_digest(data)
    (partner / "_imported.json").write_text(json.dumps({"objects": digests}))
    return partner


def _folders(root: Path) -> tuple[Path, Path]:
    """The partner folder, and a folder with _defaults.yaml and one without (returned)."""
    partner_folder(root)
    feed = root / "intel" / "feed"
    feed.mkdir(parents=True)
    (feed / "_defaults.yaml").write_text("source: Feed\ndefaults:\n  confidence: 50\n  labels: [bulk]\n")
    plain = root / "intel" / "plain"
    plain.mkdir()
    return feed, plain


def clean_repository(root: Path, files: int) -> None:
    """Valid object files of every kind: defaults, bulk files, inline relationships, partner intel, a link."""
    feed, plain = _folders(root)
    for n in range(100, 100 + files):
        folder = feed if n % 2 else plain
        if n % 5 == 0:  # a bulk file of two objects
            text = "".join("- " + _INDICATOR.format(n=n + extra, m=extra % 7).replace("\n", "\n  ").rstrip() + "\n"
                           for extra in (0, 10**7))
        elif n % 7 == 0:  # an object with an inline relationship and a derived id
            text = (f"type: threat-actor\nspec_version: '2.1'\nname: Actor {n}\nthreat_actor_types: [crime-syndicate]\n"
                    "created: '2025-01-01T00:00:00.000Z'\nmodified: '2025-01-01T00:00:00.000Z'\n"
                    f"relationships:\n  - related-to: indicator--{n - 1:08d}-0d66-4b5e-9b4a-2f7f1e3a1a11\n")
        else:
            text = _INDICATOR.format(n=n, m=n % 250)
        (folder / f"file-{n:05d}.yaml").write_text(text)
    elsewhere = root / "shared"  # a link to a file of the repository outside the intel folder
    elsewhere.mkdir()
    (elsewhere / "linked.yaml").write_text(_INDICATOR.format(n=99, m=99))
    (plain / "zz-linked.yaml").symlink_to(elsewhere / "linked.yaml")


def varied_repository(root: Path, files: int) -> None:
    """Object files of every kind loading handles, problems included, spread over the list."""
    feed, plain = _folders(root)
    kinds = [
        lambda n: _INDICATOR.format(n=n, m=n % 250).encode(),
        lambda n: ("- " + _INDICATOR.format(n=n, m=1).replace("\n", "\n  ").rstrip() + "\n- "
                   + _INDICATOR.format(n=n + 10**7, m=2).replace("\n", "\n  ").rstrip() + "\n").encode(),
        lambda n: f"type: threat-actor\nname: Actor {n}\nrelationships:\n  - uses: malware--{n:08d}-0d66-4b5e-9b4a-2f7f1e3a1a11\n".encode(),
        lambda n: b"name: caf\xe9\n",  # not UTF-8
        lambda n: b"",  # empty
        lambda n: b"type: [unclosed\n",  # not YAML
        lambda n: b"just a string\n",
        lambda n: b"- 1\n- type: x-thing\n  id: x-thing--6c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11\n",
        lambda n: _INDICATOR.format(n=n, m=3).replace("\n", "\r\n").encode(),
        lambda n: b"{1: one, type: x-thing}\n",  # a key that is not a string
        lambda n: b"type: x-thing\nvalue: !!binary aGVsbG8=\n",  # a tag tiops refuses
        lambda n: b"a: 1\n---\nb: 2\n",  # two documents
        # Objects the per-object checks report on: an impossible date, a broken pattern, an unknown property.
        lambda n: _INDICATOR.format(n=n, m=4).replace("2025-01-01T00:00:00.000Z", "2025-02-30T00:00:00.000Z").encode(),
        lambda n: _INDICATOR.format(n=n, m=5).replace("[ipv4-addr:value", "[ipv4-addr:value =").encode(),
        lambda n: (_INDICATOR.format(n=n, m=6) + "colour: red\n").encode(),
    ]
    for n in range(files):
        folder = feed if n % 2 else plain
        (folder / f"file-{n:05d}.yaml").write_bytes(kinds[n % len(kinds)](n))
    # Links: one to a file inside the repository (a duplicate id), one leaving it, one dangling.
    (plain / "file-00000-link.yaml").symlink_to(plain / "file-00000.yaml")
    outside = root.parent / f"{root.name}-outside.yaml"
    outside.write_text("type: malware\nname: Outside\nis_family: true\n")
    (feed / "file-00001-leaving.yaml").symlink_to(outside)
    (plain / "file-00002-dangling.yaml").symlink_to(plain / "nothing.yaml")


def build_outcome(root: Path, *, cache: bool = True) -> tuple[bytes | None, list[str]]:
    """What a build of ``root`` as of 2025-06-01 gives: its bundle (None when validation
    fails) and its findings as text, to compare builds made different ways."""
    try:
        result = build(root, as_of="2025-06-01", cache=cache)
    except ValidationFailed as failed:
        return None, [repr(f) for f in failed.findings]
    return result.bundle, [repr(f) for f in result.findings]
