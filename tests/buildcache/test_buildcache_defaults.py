"""A finding at a property a folder's ``_defaults.yaml`` gives: one finding at that line, through the cache too.

tiops.validate.at_defaults moves such a finding from each object to the ``_defaults.yaml`` line
and makes one of them ("a default, given to N objects"), from the objects themselves. A warm
build reads few objects (tiops.validate.indexed), so a file whose index holds such a finding
must have its objects read, or the finding stays at each object's file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_buildcache import _age, _outcome

from tiops.validate import validate_paths

DEFAULTS = "intel/malware/_defaults.yaml"


def _warm(root: Path) -> None:
    """Two cached builds: entries for every file, then the folders' groups (a folder taken whole)."""
    _age(*(p for p in root.rglob("*") if p.is_file()))
    for _ in range(2):
        _outcome(root, cache=True)


@pytest.mark.parametrize("default", [
    "malware_types: [not-a-vocab-value]",  # a warning (TI209): the bundle is still written
    "x_Bad: 1",  # an error (TI242): nothing is compiled
])
def test_a_finding_at_a_default_is_reported_at_the_defaults_line(example_repo: Path, default: str) -> None:
    _warm(example_repo)
    (example_repo / DEFAULTS).write_text(f"defaults:\n  {default}\n")
    expected = validate_paths(example_repo, [], cache=False)
    at_default = [f for f in expected if f.location.file == DEFAULTS and "(a default, given to " in f.message]
    assert len(at_default) == 1
    for _ in range(2):  # the build that makes the entries again, then one that takes them
        assert validate_paths(example_repo, [], cache=True) == expected
        assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)
    # What a pre-commit hook passes when only the defaults changed, and one object file of the folder.
    for named in (DEFAULTS, "intel/malware/mimikatz.yaml"):
        assert (validate_paths(example_repo, [example_repo / named], cache=True)
                == validate_paths(example_repo, [example_repo / named], cache=False))
    # Fixed again: nothing is left at the defaults.
    (example_repo / DEFAULTS).write_text("defaults: {}\n")
    assert validate_paths(example_repo, [], cache=True) == validate_paths(example_repo, [], cache=False)
    assert not [f for f in validate_paths(example_repo, [], cache=True) if f.location.file == DEFAULTS]
