from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from pr_repo import ACTOR, C2_ADDRESS, C2_DOMAIN, MALWARE, RULE, base_repo, make_pull_request

from tiops.cli import main
from tiops.diff import diff_revisions
from tiops.render.diff import render_markdown
from tiops.revision import compile_revision


@pytest.fixture
def pr_repo(tmp_path: Path) -> Path:
    root = base_repo(tmp_path / "repo")
    make_pull_request(root)
    return root


def test_diff_names_each_change_of_a_pull_request(pr_repo: Path) -> None:
    diff = diff_revisions(compile_revision(pr_repo, "base"), compile_revision(pr_repo, "HEAD"))
    # The edited indicator, field by field.
    assert [c.ref.id for c in diff.changed] == [C2_ADDRESS]
    fields = {f.field: (f.before, f.after) for f in diff.changed[0].fields}
    assert fields["description"] == ("Command-and-control server.", "Command-and-control server, sinkholed since March.")
    assert fields["modified"] == ("2025-02-01T00:00:00.000Z", "2025-03-01T00:00:00.000Z")
    # The added relationship, with names.
    assert [(r.source_ref, r.relationship_type, r.target_ref) for r in diff.relationships_added] == [(C2_ADDRESS, "indicates", MALWARE)]
    assert diff.relationships_added[0].target_name == "LanternLoader"
    # The revoked actor.
    assert [c.ref.id for c in diff.revoked] == [ACTOR]
    # The rule change: the untouched indicator compiles differently, grouped by rule.
    assert [(e.cause, [c.ref.id for c in e.changes]) for e in diff.effects] == [(f"rule {RULE}", [C2_DOMAIN])]
    assert diff.effects[0].changes[0].fields[0].field == "valid_until"
    assert diff.added == () and diff.removed == ()


def test_diff_of_the_working_tree_and_a_removed_object(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    (root / "intel" / "lanternloader.yaml").unlink()
    diff = diff_revisions(compile_revision(root, "base"), compile_revision(root, None))
    assert [r.id for r in diff.removed] == [MALWARE]
    assert diff.head == "working tree"


def test_identical_revisions_give_an_empty_diff(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    result = CliRunner().invoke(main, ["-C", str(root), "diff", "base", "--exit-code"])
    assert result.exit_code == 0, result.output
    assert "No change to the compiled intel." in result.output


def test_the_pull_request_that_adds_the_intel_lists_it_as_added_with_no_error_note(tmp_path: Path) -> None:
    import shutil

    from pr_repo import DATA, git

    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").write_text("Intel to come.\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "readme")
    shutil.copytree(DATA / "base", root, dirs_exist_ok=True)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "intel")
    for revisions in (["HEAD~1"], ["HEAD~1", "HEAD"]):
        result = CliRunner().invoke(main, ["-C", str(root), "diff", *revisions, "--format", "markdown"])
        assert result.exit_code == 0, result.output
        # A base from before the intel is empty, not broken: no warning that would head the comment.
        assert "validation error" not in result.output and "| Added | 7 |" in result.output
    # A head without the intel folder is still said to be broken: its build would revoke everything.
    reverse = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD", "HEAD~1"])
    assert "HEAD~1 (" in reverse.output and "has 1 validation error(s)" in reverse.output


def test_a_head_revision_whose_tiops_yaml_has_an_error_is_refused_as_the_working_tree_is(tmp_path: Path) -> None:
    from pr_repo import git

    root = base_repo(tmp_path / "repo")
    (root / "tiops.yaml").write_text("intel: {path: intel}\n", encoding="utf-8")  # not how tiops.yaml names it
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a tiops.yaml with an error")
    # The pull-request workflow's form (docs/ci.md): read as every default, the head was compared
    # from the default intel folder and rules, with only a note under the heading.
    for revisions in (["base"], ["base", "HEAD"]):
        result = CliRunner().invoke(main, ["-C", str(root), "diff", *revisions, "--format", "markdown"])
        assert result.exit_code == 1, result.output
        assert "tiops.yaml" in result.output and "nothing was compared" in result.output
        assert "Traceback" not in result.output and "###" not in result.output
    # A base with such an error is still compared (the pull request may be the one that fixes it).
    fixed = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD", "base"])
    assert fixed.exit_code == 0 and "has 1 validation error(s)" in fixed.output


@pytest.mark.parametrize("cache", ["--no-cache", None])
def test_a_clean_checkout_with_an_encrypting_filter_has_no_change(tmp_path: Path, cache: str | None) -> None:
    from pr_repo import edit, encrypting_filter, git

    root = base_repo(tmp_path / "repo")
    encrypting_filter(root)  # as git-crypt: ciphertext in the commit
    (root / ".gitattributes").write_text("intel/c2-*.yaml filter=crypt\n")
    git(root, "add", "-A")
    git(root, "add", "--renormalize", ".")  # the indicators' blobs through the new filter
    git(root, "commit", "-q", "-m", "encrypt the indicators")
    git(root, "rm", "-q", "--cached", "-r", ".")
    git(root, "reset", "-q", "--hard")  # checked out again, through the filter
    options = [cache] if cache else []
    for revisions in (["HEAD"], ["base"], ["base", "HEAD"]):
        result = CliRunner().invoke(main, ["-C", str(root), "diff", *revisions, *options])
        assert result.exit_code == 0, result.output
        assert "No change to the compiled intel." in result.output and "error" not in result.output
    edit(root, "intel/c2-address.yaml", "Command-and-control server.", "Sinkholed.")
    result = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD", *options])
    assert "1 changed" in result.output and 'description: "Command-and-control server." -> "Sinkholed."' in result.output


def test_a_committed_dot_folder_is_no_more_part_of_a_revision_than_of_the_working_tree(tmp_path: Path) -> None:
    from pr_repo import git

    root = base_repo(tmp_path / "repo")
    drafts = root / "intel" / ".drafts"
    drafts.mkdir()
    (drafts / "wip.yaml").write_text("not: [finished\n", encoding="utf-8")
    (drafts / "copy.yaml").write_bytes((root / "intel" / "lanternloader.yaml").read_bytes())  # a duplicate id, if read
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "drafts")
    for revisions in (["base"], ["base", "HEAD"], ["HEAD"]):
        result = CliRunner().invoke(main, ["-C", str(root), "diff", *revisions, "--exit-code"])
        assert result.exit_code == 0, result.output
        assert "No change to the compiled intel." in result.output and "error" not in result.output


def test_a_committed_link_to_an_intel_file_compiles_the_same_from_git_and_from_the_checkout(tmp_path: Path) -> None:
    from pr_repo import git

    root = base_repo(tmp_path / "repo")
    (root / "shared").mkdir()
    (root / "intel" / "lanternloader.yaml").rename(root / "shared" / "lanternloader.yaml")
    (root / "intel" / "lanternloader.yaml").symlink_to("../shared/lanternloader.yaml")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the malware kept in shared/, linked from intel/")
    for revisions in (["HEAD"], ["base", "HEAD"], ["base"]):
        result = CliRunner().invoke(main, ["-C", str(root), "diff", *revisions, "--exit-code"])
        assert result.exit_code == 0, (revisions, result.output)
        assert "No change to the compiled intel." in result.output


def test_an_object_two_new_rules_change_is_listed_under_both(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    (root / "rules" / "ingestion" / "tags.yaml").write_text(
        "- {name: Tag confident, order: 20, object_types: [indicator],"
        " when: {field: confidence, op: '>=', value: 80}, actions: [{add_tags: [confident]}]}\n"
        "- {name: Tag domains, order: 30, object_types: [indicator],"
        " when: {field: pattern, op: contains, value: domain-name}, actions: [{add_tags: [domain]}]}\n",
        encoding="utf-8")
    diff = diff_revisions(compile_revision(root, "base"), compile_revision(root, None))
    causes = {effect.cause: [change.ref.id for change in effect.changes] for effect in diff.effects}
    # The domain indicator: both new rules changed it, and neither alone can be told from the labels.
    assert causes == {"rule Tag confident": [C2_ADDRESS], "rules Tag confident and Tag domains": [C2_DOMAIN]}
    text = CliRunner().invoke(main, ["-C", str(root), "diff", "base"]).output
    assert "* rules Tag confident and Tag domains: 1 object(s) compile differently" in text
    assert "2 compiled differently by rules, defaults or overlays" in text


def test_cli_formats_are_deterministic_and_complete(pr_repo: Path) -> None:
    runner = CliRunner()
    outputs = {}
    for fmt in ("text", "markdown", "json"):
        first = runner.invoke(main, ["-C", str(pr_repo), "diff", "base", "HEAD", "--format", fmt])
        second = runner.invoke(main, ["-C", str(pr_repo), "diff", "base", "HEAD", "--format", fmt])
        assert first.exit_code == 0, first.output
        assert first.output == second.output
        outputs[fmt] = first.output
    data = json.loads(outputs["json"])
    assert data["counts"] == {"added": 0, "changed": 1, "revoked": 1, "removed": 0, "relationships_added": 1,
                              "relationships_removed": 0, "rule_effects": 1, "enrichment": 0}
    markdown = outputs["markdown"]
    assert markdown.index("| Change | Objects |") < markdown.index("<details>")
    assert f"Effect of rule {RULE}" in markdown
    assert "Copper Lantern" in outputs["text"] and "sinkholed" in outputs["text"]


def test_markdown_is_capped_with_a_line_saying_what_was_left_out(pr_repo: Path) -> None:
    diff = diff_revisions(compile_revision(pr_repo, "base"), compile_revision(pr_repo, "HEAD"))
    full = render_markdown(diff)
    capped = render_markdown(diff, limit=len(full) - 200)
    assert len(capped) < len(full)
    assert "more item(s) left out to fit a comment" in capped


def test_markdown_escapes_html_in_names(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    path = root / "intel" / "lanternloader.yaml"
    path.write_text(path.read_text().replace("name: LanternLoader", "name: \"<img src=x onerror=alert(1)>|x\""))
    diff = diff_revisions(compile_revision(root, "base"), compile_revision(root, None))
    markdown = render_markdown(diff)
    assert "<img" not in markdown and "&lt;img" in markdown


def test_markdown_with_a_note_keeps_its_table_and_shows_a_backtick_in_an_id_as_text() -> None:
    """A note (a revision with errors) was followed at once by the summary table, which CommonMark
    then read as more of the quote; and an id or type holding a backtick ended its code span."""
    from markdown_it import MarkdownIt

    from tiops.diff import Diff, ObjectRef, RelationshipRef

    hostile = "x--`</summary><img src=x onerror=alert(1)>`"
    diff = Diff(base="base", head="HEAD", notes=("HEAD has 1 validation error(s); its compiled form may be incomplete",),
                added=(ObjectRef(hostile, "x`y", "Name"),),
                relationships_added=(RelationshipRef(hostile, "a", "uses", "b", "A", "B"),))
    html = MarkdownIt("commonmark").enable("table").render(render_markdown(diff))
    assert "<blockquote>" in html and "<table>" in html
    assert html.index("</blockquote>") < html.index("<table>")  # the table is not inside the quote
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_markdown_shows_partner_text_without_links_emphasis_or_mentions(tmp_path: Path) -> None:
    # A name whose words hide a link, or that pings @org/team in the pull request comment.
    root = base_repo(tmp_path / "repo")
    path = root / "intel" / "lanternloader.yaml"
    path.write_text(path.read_text().replace(
        "name: LanternLoader", "name: \"see [the docs](https://evil.example) *now* @acme/security abuse@example.net"
        " fixes #12, gh-7 and acme/intel#3\""))
    markdown = render_markdown(diff_revisions(compile_revision(root, "base"), compile_revision(root, None)))
    # Each would link an issue, and post an event in its timeline.
    assert "#\u200b12" in markdown and "gh-\u200b7" in markdown and "acme/intel#\u200b3" in markdown
    assert not re.search(r"#\d|gh-\d", markdown, re.IGNORECASE), markdown
    assert "\\[the docs\\](https://evil.example)" in markdown and "[the docs](" not in markdown
    assert "\\*now\\*" in markdown and "@\u200bacme/security" in markdown and " @acme" not in markdown
    assert "abuse@example.net" in markdown  # an address mentions nobody: left as written


def test_unknown_revision_is_a_usage_error(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    result = CliRunner().invoke(main, ["-C", str(root), "diff", "no-such-branch"])
    assert result.exit_code == 2
    assert "no-such-branch" in result.output


def test_a_sha_given_as_the_revision_is_named_once_in_the_heading(tmp_path: Path) -> None:
    from tiops.gitrepo import resolve_revision

    root = base_repo(tmp_path / "repo")
    sha = resolve_revision(root, "base")[0]
    for given in (sha, sha[:10], sha[:7].upper()):
        result = CliRunner().invoke(main, ["-C", str(root), "diff", given, "--format", "markdown"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"### tiops diff `{sha[:7]}` → `working tree`"), (given, result.output[:120])
    named = CliRunner().invoke(main, ["-C", str(root), "diff", "base", "--format", "markdown"])
    assert named.output.startswith(f"### tiops diff `base ({sha[:7]})`"), named.output[:120]


def test_a_range_as_base_is_a_usage_error_naming_the_two_argument_form(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    # As typed after `git diff origin/main...HEAD`: rev-parse reads it as two revisions, not one.
    result = CliRunner().invoke(main, ["-C", str(root), "diff", "base...HEAD"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'base...HEAD' is a range of commits, not one commit" in result.output
    assert "git merge-base A B" in result.output and "tiops diff A B" in result.output
    tree = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD:intel"])
    assert tree.exit_code == 2 and "'HEAD:intel' names a tree, not a commit" in tree.output


def test_text_shows_field_values_with_bidirectional_overrides_escaped(tmp_path: Path) -> None:
    from tiops.render.diff import render_text

    root = base_repo(tmp_path / "repo")
    path = root / "intel" / "lanternloader.yaml"
    path.write_text(path.read_text().replace("name: LanternLoader", 'name: "\\u202eredaoLnretnaL\\u2066"'))
    text = render_text(diff_revisions(compile_revision(root, "base"), compile_revision(root, None)))
    assert "\\u202eredaoLnretnaL\\u2066" in text
    assert not any(character in text for character in "\u202e\u2066")


def test_a_long_value_changed_near_its_end_shows_where_it_differs(tmp_path: Path) -> None:
    """A feed that appends to a long description: cut from the start, both sides of the arrow read the same."""
    from pr_repo import edit

    root = base_repo(tmp_path / "repo")
    long_text = "Command-and-control server of the LanternLoader campaign, " * 4
    edit(root, "intel/c2-address.yaml", "description: Command-and-control server.", f"description: {long_text.strip()}")
    from pr_repo import git

    git(root, "commit", "-q", "-am", "long description")
    edit(root, "intel/c2-address.yaml", long_text.strip(), long_text.strip() + " Sinkholed since March.")
    for fmt in ("text", "markdown"):
        output = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD", "--format", fmt]).output
        line = next(line for line in output.splitlines() if "description" in line)
        before, _, after = line.partition(" -> " if fmt == "text" else " → ")
        assert "Sinkholed since March." in after and "Sinkholed" not in before, line
        assert before.rstrip().endswith('campaign,"') or before.rstrip().endswith('campaign,\\"'), line
        assert len(after) <= 125  # still one reviewable line


def test_a_capped_markdown_section_shows_the_items_that_fit(tmp_path: Path) -> None:
    from pr_repo import git

    root = base_repo(tmp_path / "repo")
    for number in range(60):
        (root / "intel" / f"added-{number:02d}.yaml").write_text(
            f"type: malware\nspec_version: '2.1'\nid: malware--00000000-0000-4000-8000-{number:012d}\n"
            f"created: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\nname: Added {number}\n"
            "is_family: true\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "sixty")
    diff = diff_revisions(compile_revision(root, "base"), compile_revision(root, "HEAD"))
    full = render_markdown(diff)
    capped = render_markdown(diff, limit=len(full) // 2)
    # A section over the limit was left out whole: the biggest change showed nothing at all.
    shown = sum(1 for line in capped.splitlines() if line.startswith("- ") and "Added " in line)
    assert 10 < shown < 60, capped
    assert f"{60 - shown} more item(s) left out to fit a comment" in capped and len(capped) <= len(full) // 2


def test_an_object_moved_to_a_folder_with_other_defaults_is_listed_as_changed(tmp_path: Path) -> None:
    from pr_repo import MALWARE_FILE, git

    root = base_repo(tmp_path / "repo")
    (root / "intel" / "green").mkdir()
    (root / "intel" / "green" / "_defaults.yaml").write_text(
        "defaults:\n  object_marking_refs: [marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da]\n")
    git(root, "mv", MALWARE_FILE, "intel/green/lanternloader.yaml")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "move")
    diff = diff_revisions(compile_revision(root, "base"), compile_revision(root, "HEAD"))
    # It was put down to a defaults file that did not change, and counted as 0 changed.
    assert [c.ref.id for c in diff.changed] == [MALWARE], diff


def test_a_submodule_under_intel_is_no_more_read_from_the_checkout_than_from_git(tmp_path: Path) -> None:
    from pr_repo import git

    other = tmp_path / "other"  # a repository of its own, holding an intel file
    other.mkdir()
    (other / "vendored.yaml").write_text(
        "type: malware\nspec_version: '2.1'\nid: malware--00000000-0000-4000-8000-00000000c0de\n"
        "created: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\nname: Vendored\nis_family: true\n")
    git(other, "init", "-q", "-b", "main")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "vendored")
    root = base_repo(tmp_path / "repo")
    git(root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(other), "intel/vendored")
    git(root, "commit", "-q", "-m", "submodule")
    # The checkout read the submodule's files (objects added, duplicate ids) where the commit holds none.
    result = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD", "--exit-code"])
    assert result.exit_code == 0 and "No change to the compiled intel." in result.output, result.output


# A partner or a careless author's text that tries to start a line of its own: in a terminal or
# CI log (where a runner reads "::add-mask::" as a command, indented or not) or in the comment.
INJECTED = "\n::add-mask::x\r# APPROVED\r> quoted\x1b[2J\u202e"


def test_a_rule_name_with_line_breaks_stays_on_its_line_in_text_and_markdown(pr_repo: Path) -> None:
    from tiops.render.diff import render_text

    rules = pr_repo / "rules" / "ingestion" / "validity.yaml"
    rules.write_text(rules.read_text().replace(f"name: {RULE}", f"name: {json.dumps(RULE + INJECTED)}"))
    diff = diff_revisions(compile_revision(pr_repo, "base"), compile_revision(pr_repo, None))
    assert len(diff.effects) == 1 and f"{RULE}{INJECTED}" in diff.effects[0].cause
    text = render_text(diff)
    assert not any(line.lstrip().startswith(("::", "#", ">")) for line in text.splitlines()[1:])
    assert f"{RULE}\\x0a::add-mask::x\\x0d# APPROVED\\x0d> quoted\\x1b[2J\\u202e" in text
    markdown = render_markdown(diff)
    assert "\r" not in markdown and "\x1b" not in markdown and "\u202e" not in markdown
    assert not any(line.lstrip().startswith(("::", "# APPROVED", "&gt; quoted")) for line in markdown.splitlines())


def test_a_base_whose_rules_have_an_error_is_compared_without_them(tmp_path: Path) -> None:
    """As a base with broken object files is: the change under review may be the one that mends its rules.
    The whole diff failed, with a hint to run 'tiops validate' in a working tree that had no error."""
    from pr_repo import git

    root = base_repo(tmp_path / "repo")
    rules = next((root / "rules" / "ingestion").glob("*.yaml"))
    good = rules.read_text(encoding="utf-8")
    rules.write_text(good + "- {name: broken, order: 99, object_types: [indicator], when: {all: []}, actions: []}\n",
                     encoding="utf-8")
    git(root, "commit", "-q", "-am", "a rule with an error")
    rules.write_text(good, encoding="utf-8")  # the working tree mends it
    result = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD"])
    assert result.exit_code == 0, result.output
    assert "HEAD (" in result.output and "has 2 validation error(s)" in result.output
    # Compiled without rules, the base's indicators lack what the mended rule does to them: said so.
    assert f"rule {RULE}: " in result.output
    assert "its ingestion rules have 2 error(s), so it was compiled without them" in result.output
    diff = diff_revisions(compile_revision(root, "HEAD", as_base=True), compile_revision(root, None))
    assert [effect.cause for effect in diff.effects] == [f"rule {RULE}"] and not diff.added and not diff.removed
    # A head revision's are refused, naming it; the working tree's too: 'tiops validate' there shows them.
    head = CliRunner().invoke(main, ["-C", str(root), "diff", "base", "HEAD"])
    assert head.exit_code == 1 and "HEAD (" in head.output and "the ingestion rules have 2 error(s); nothing was compared" in head.output
    assert "git switch --detach" in head.output
    git(root, "checkout", "-q", "HEAD", "--", str(rules))
    refused = CliRunner().invoke(main, ["-C", str(root), "diff", "base"])
    assert refused.exit_code == 1 and "the ingestion rules have" in refused.output


def test_no_git_to_run_and_no_commit_yet_are_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both said the folder was not a git repository, or that HEAD names no commit, with a hint to name another."""
    from pr_repo import git

    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    git(root, "init", "-q")
    empty = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD"])
    assert empty.exit_code == 2 and "the repository has no commit yet" in empty.output
    assert "Commit the intel first" in empty.output
    root = base_repo(tmp_path / "committed")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    missing = CliRunner().invoke(main, ["-C", str(root), "diff", "base"])
    assert missing.exit_code == 2 and "git is not installed, or not on PATH" in missing.output
    assert "Install git, or put it on PATH" in missing.output and "not inside a git repository" not in missing.output
