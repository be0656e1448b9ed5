"""`tiops init`: the files of a new intel repository that validates and compiles at once.

Nothing here writes over an existing file: :func:`new_repo_files` says what would be
written, :func:`init_repo` refuses when any of it is already there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tiops.config import CONFIG_FILE
from tiops.discover import find_repo_root
from tiops.errors import UsageError
from tiops.stix import TLP2_MARKINGS, derive_sdo_id

TLP_LEVELS = tuple(TLP2_MARKINGS)


@dataclass(frozen=True)
class NewRepo:
    folder: Path
    files: dict[str, str]  # relative path -> text, in writing order


def new_repo_files(folder: Path, *, team: str, tlp: str, version: str, time: str) -> NewRepo:
    """The files of a new repository for ``team`` (not written)."""
    if not team.strip():
        raise UsageError("--team must not be empty")
    if tlp not in TLP2_MARKINGS:
        raise UsageError(f"--tlp {tlp!r} is not a TLP 2.0 level", hint=f"Use one of: {', '.join(TLP_LEVELS)}.")
    identity_id = derive_sdo_id("identity", {"name": team, "identity_class": "organization"})
    assert identity_id is not None  # an identity with a name always derives an id
    marking_id, marking_name = TLP2_MARKINGS[tlp]
    from tiops.authoring import file_stem

    stem = file_stem(team) or "team"
    # The report's own default panels, imported only when a repository is made.
    from tiops.report.panels import DEFAULT_PANELS_YAML

    files = {
        CONFIG_FILE: _CONFIG,
        "intel/_defaults.yaml": _DEFAULTS.format(team=_quoted(team), identity_id=identity_id, marking_id=marking_id,
                                                 marking_name=marking_name, stem=stem),
        f"intel/identities/{stem}.yaml": _IDENTITY.format(team=_quoted(team), identity_id=identity_id, time=time),
        "rules/relationships.yaml": _RELATIONSHIPS,
        "rules/ingestion/review-low-confidence.yaml": _INGESTION_RULE,
        "report.yaml": DEFAULT_PANELS_YAML,  # the report's overview, for the team to edit
        ".gitignore": _GITIGNORE,
        ".github/workflows/intel-pr.yml": _PR_WORKFLOW.format(version=version),
        ".pre-commit-config.yaml": _PRE_COMMIT.format(version=version),
    }
    return NewRepo(folder=folder, files=files)


def init_repo(new: NewRepo) -> list[Path]:
    """Write ``new``; refuse, writing nothing, when any of its files already exists or when
    the folder lies inside another tiops repository (its files would be read as that one's intel)."""
    outer = find_repo_root(new.folder)
    if outer is not None and outer != new.folder.resolve():
        raise UsageError(f"{new.folder} is inside the tiops repository {outer}; tiops init starts a new one",
                         hint="Choose a folder outside it, e.g. 'tiops init ../NEW_FOLDER'.")
    existing = [name for name in new.files if (new.folder / name).exists()]
    if existing:
        raise UsageError(
            f"{new.folder} already has {', '.join(existing)}; tiops init never overwrites a file",
            hint="Run it in an empty folder, e.g. 'tiops init NEW_FOLDER', or move those files away first.",
        )
    if new.folder.exists() and not new.folder.is_dir():
        raise UsageError(f"{new.folder} is not a folder; tiops init makes a repository in a folder",
                         hint="Name a new or empty folder, e.g. 'tiops init NEW_FOLDER'.")
    written: list[Path] = []
    for name, text in new.files.items():
        path = new.folder / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as handle:  # "x": never replace a file created meanwhile
                handle.write(text)
        except OSError as error:  # a read-only place, a full disk, a file created meanwhile
            raise UsageError(f"cannot write {path}: {error.strerror or error}"
                             + (f" (written so far: {', '.join(p.name for p in written)})" if written else ""),
                             hint="Name a folder tiops can create and write, e.g. 'tiops init NEW_FOLDER'.") from None
        written.append(path)
    return written


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_CONFIG = """\
# tiops configuration. Every key is optional; the values below are the defaults.
# Reference: the tiops.yaml section of docs/format.md.

# Where the STIX object YAML files live (relative to this file).
intel: intel
# Where rules/relationships.yaml and rules/ingestion/*.yaml live.
rules: rules
# Where 'tiops compile' writes bundle.json and 'tiops report' the HTML site.
output: dist

# Where 'tiops plan' and 'tiops apply' publish. 'local' is an SQLite file and
# needs no server; add PostgreSQL, TAXII 2.1 or Microsoft Sentinel targets here
# (docs/targets.md). Only environment variable names go here, never secrets.
default_target: local
targets:
  local:
    type: sqlite
    path: .tiops/store.sqlite

validation:
  # true: warnings (unknown properties, open-vocabulary values...) fail too.
  strict: false
  # 'tiops validate --base REF' on an object deleted instead of revoked: warning or error.
  deleted_objects: warning
"""

_DEFAULTS = """\
# Folder defaults: every object under intel/ inherits these properties unless it
# sets them itself. A _defaults.yaml in a subfolder overrides this one there.
# Reference: docs/format.md.

# The system this intel comes from (Microsoft Sentinel shows it as "Source").
source: {team}
defaults:
  # Our team is the creator of our intel: intel/identities/{stem}.yaml.
  created_by_ref: {identity_id}
  # {marking_name}, a built-in TLP 2.0 marking: referenced, never redefined.
  object_marking_refs:
    - {marking_id}
"""

_IDENTITY = """\
# Our own team: intel/_defaults.yaml names it as the creator of every object.
type: identity
spec_version: "2.1"
id: {identity_id}
created: {time}
modified: {time}
name: {team}
identity_class: organization
"""

_RELATIONSHIPS = """\
# Relationships this team allows beyond the built-in table (STIX 2.1 Appendix B),
# one (source type, relationship type, target type) triple per entry, e.g.
#   - {source: indicator, type: indicates, target: tool, note: "why we allow it"}
# Reference: docs/format.md.
relationships: []
"""

_INGESTION_RULE = """\
# Ingestion rules, applied by 'tiops compile' in order (lowest first). Each rule
# carries examples that 'tiops test' checks. Reference: docs/rules.md.

- name: Flag low-confidence indicators for review
  description: Indicators under confidence 50 get a tag analysts filter on before trusting them.
  order: 10
  object_types: [indicator]
  when: {all: [{field: confidence, op: "<", value: 50}]}
  actions:
    - {add_tags: [needs-review]}
  tests:
    - name: a low-confidence indicator is tagged
      input: {type: indicator, confidence: 30}
      expect: {fields: {labels: [needs-review]}}
    - name: a confident indicator is left alone
      input: {type: indicator, confidence: 80}
      expect: {fields: {labels: null}}
"""

_GITIGNORE = """\
# tiops output: the local store and lock, the compiled bundle and report.
.tiops/
dist/
"""

_PR_WORKFLOW = """\
# Pull request: validate the intel change, run the rule tests, comment the semantic diff.
# Reference: docs/ci.md of tiops.
name: intel pull request

on:
  pull_request:
    paths: ["intel/**", "rules/**", "tiops.yaml"]

permissions:
  contents: read
  pull-requests: write  # the diff comment

jobs:
  review:
    runs-on: ubuntu-latest
    env:
      BASE_REF: origin/${{{{ github.base_ref }}}}
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0  # tiops diff and validate --base read the base commit
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - name: Install tiops (the version this repository was created with)
        run: pip install "tiops=={version}"
      - name: Validate (annotations on the changed lines, versioning against the base)
        run: tiops validate --format github --base "$BASE_REF"
      - name: Ingestion rule tests
        run: tiops test
      - name: Semantic diff
        if: always()
        run: tiops diff "$BASE_REF" HEAD --format markdown -o tiops-diff.md
      - name: Post the diff as a comment (one comment, updated on every push)
        if: always() && github.event.pull_request.head.repo.full_name == github.repository
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          PR: ${{{{ github.event.pull_request.number }}}}
        run: gh pr comment "$PR" --body-file tiops-diff.md --edit-last || gh pr comment "$PR" --body-file tiops-diff.md
"""

_PRE_COMMIT = """\
# pre-commit hooks (https://pre-commit.com): 'pre-commit install' once per clone.
# tiops is pinned to the version this repository was created with.
repos:
  - repo: local
    hooks:
      - id: tiops-validate
        name: tiops validate
        entry: tiops validate
        language: python
        additional_dependencies: ["tiops=={version}"]
        files: (?i)^(intel|rules)/.*\\.(ya?ml|json)$|^tiops\\.yaml$
        require_serial: true
      - id: tiops-test
        name: tiops test
        entry: tiops test
        language: python
        additional_dependencies: ["tiops=={version}"]
        files: ^rules/ingestion/.*\\.ya?ml$
        pass_filenames: false
"""
