"""Time what a 50-rule ingestion rule set adds to `tiops compile`.

    python benchmarks/bench_rules.py [--objects 100000] [--rules 50] [--repeat 3]

Generates a synthetic repository (benchmarks/generate_repo.py), loads it once, then
times the compile stage (rules, compiled objects and bundle serialisation, as
``tiops.build`` runs them) without rules and with a rule set that uses every operator
family and action: five in seven rules are about one source (indexed), two look at
every indicator. Prints both times, the difference and the ratio. Times are this
process's CPU time (best of --repeat), so other work on the machine does not count.

Then it times a bad case for the rule index: 30 rules keyed on tags, over as many
objects each carrying a random one to six of those tags, so nearly every object meets
its own combination of rules. Printed as a ratio to the rule pass above.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_repo import write_repository

from tiops.compile import compiled_objects, serialize_bundle
from tiops.load import IntelObject, load_repo
from tiops.memory import paused_gc
from tiops.rules.engine import apply_rules
from tiops.rules.model import RuleSet, load_rules, parse_rule_file

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)
SOURCES = ("Abuse Tracker", "Honeypot Sensors", "Partner ISAC", "OSINT Collector")  # generate_repo.FEEDS
# Templates cycled to make the rule set. Like most Sentinel rule sets, most rules are
# about one source; two look at every object. {i} keeps names and values distinct.
_TEMPLATES = (
    "- {{name: tag source {i}, order: {i}, when: {{field: source, op: equals, value: {src}}}, actions: [{{add_tags: [feed-{i}]}}]}}",
    "- {{name: extend {i}, order: {i}, object_types: [indicator], when: {{all: [{{field: source, op: equals, value: {src}}}, {{field: confidence, op: '>=', value: {hi}}}, {{field: revoked, op: not-equals, value: true}}]}}, actions: [{{extend: valid_until, by: 30d}}, {{add_tags: [extended]}}]}}",
    "- {{name: drop stale {i}, order: {i}, object_types: [indicator], when: {{all: [{{field: source, op: in, value: [{src}]}}, {{field: confidence, op: '<', value: 3}}, {{field: modified, op: older-than, value: {days}d}}]}}, actions: [{{drop: true}}]}}",
    "- {{name: regex {i}, order: {i}, object_types: [indicator], when: {{all: [{{field: source, op: equals, value: {src}}}, {{field: pattern, op: matches, value: 'domain-name:value = .*\\\\.x{i}\\\\.'}}]}}, actions: [{{set: {{x_rule: r{i}}}}}]}}",
    "- {{name: tlp {i}, order: {i}, when: {{all: [{{field: tlp, op: in, value: [red]}}, {{field: tags, op: contains, value: tag-{i}}}]}}, actions: [{{set_confidence: 10}}]}}",
    "- {{name: refs {i}, order: {i}, object_types: [indicator, malware], when: {{any: [{{field: external_references.source_name, op: equals, value: src-{i}}}, {{field: name, op: starts-with, value: zz{i}}}]}}, actions: [{{revoke: true}}]}}",
    "- {{name: untag {i}, order: {i}, object_types: [indicator], when: {{all: [{{field: source, op: equals, value: {src}}}, {{field: valid_until, op: not-exists}}]}}, actions: [{{remove_tags: [stale-{i}]}}]}}",
)


def rule_text(count: int) -> str:
    lines = [_TEMPLATES[i % len(_TEMPLATES)].format(i=i, hi=80 + i % 15, days=365 + i, src=SOURCES[i % len(SOURCES)])
             for i in range(count)]
    return "\n".join(lines) + "\n"


def tag_combination_case(count: int) -> tuple[RuleSet, list[IntelObject]]:
    """30 rules keyed on tags (a third also drop) and ``count`` objects with 1-6 random tags each."""
    shapes = (
        "- {{name: r{i}, order: {i}, when: {{field: tags, op: equals, value: t{i}}}, actions: [{{set_confidence: {i}}}]}}",
        "- {{name: r{i}, order: {i}, when: {{all: [{{field: tags, op: equals, value: t{i}}}, {{field: confidence, op: '>', value: 5}}]}}, actions: [{{revoke: true}}]}}",
        "- {{name: r{i}, order: {i}, when: {{all: [{{field: tags, op: equals, value: t{i}}}, {{field: name, op: matches, value: 'x'}}]}}, actions: [{{set: {{x_a: 1}}}}, {{drop: true}}]}}",
    )
    rules, findings = parse_rule_file("\n".join(shapes[i % 3].format(i=i) for i in range(30)) + "\n", "rules/ingestion/tags.yaml")
    if findings:
        raise SystemExit(f"the tag-combination rule set has findings: {findings[:3]}")
    tags = [f"t{i}" for i in range(30)]
    rng = random.Random(7)  # fixed: the same objects every run
    objects = [IntelObject(data={"type": "indicator", "id": f"indicator--{n}", "name": f"n{n}x", "confidence": 50,
                                 "labels": rng.sample(tags, rng.randint(1, 6))}, file="intel/tags.yaml")
               for n in range(count)]
    return RuleSet(tuple(sorted(rules, key=lambda r: r.sort_key)), "tags"), objects


def best_of(repeat: int, run: object) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        run()  # type: ignore[operator]
        times.append(time.process_time() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_repository(root, args.objects)
        (root / "rules" / "ingestion").mkdir(parents=True, exist_ok=True)
        (root / "rules" / "ingestion" / "bench.yaml").write_text(rule_text(args.rules), encoding="utf-8")
        repo = load_repo(root)
        rule_set, findings = load_rules(repo.config)
        if any(f.severity.name == "ERROR" for f in findings):
            raise SystemExit(f"the generated rule set has errors: {findings[:3]}")
        empty = RuleSet((), "")

        def compile_with(rules: RuleSet) -> None:
            with paused_gc():  # as tiops.build does
                serialize_bundle(compiled_objects(repo, rules=apply_rules(repo.objects, rules, AS_OF, record=False)))

        without = best_of(args.repeat, lambda: compile_with(empty))
        with_rules = best_of(args.repeat, lambda: compile_with(rule_set))
        rules_only = best_of(args.repeat, lambda: apply_rules(repo.objects, rule_set, AS_OF, record=False))
    tag_rules, tagged = tag_combination_case(args.objects)
    combinations = best_of(args.repeat, lambda: apply_rules(tagged, tag_rules, AS_OF, record=False))
    print(f"objects: {len(repo.objects)}, rules: {len(rule_set.rules)}")
    print(f"compile without rules: {without:.3f} s")
    print(f"compile with rules:    {with_rules:.3f} s")
    print(f"added by rules:        {with_rules - without:.3f} s (rule pass alone: {rules_only:.3f} s)")
    print(f"ratio:                 {with_rules / without:.2f}x")
    print(f"bad case, {len(tag_rules.rules)} rules keyed on random tag combinations: rule pass {combinations:.3f} s"
          f" ({combinations / rules_only:.2f}x the pass above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
