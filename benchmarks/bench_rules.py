"""Time what a 50-rule ingestion rule set adds to `tiops compile`.

    python benchmarks/bench_rules.py [--objects 100000] [--rules 50] [--repeat 3]

Generates a synthetic repository (benchmarks/generate_repo.py), loads it once, then
times the compile stage (rules, compiled objects and bundle serialisation, as
``tiops.build`` runs them) without rules and with a rule set that uses every operator
family and action: five in seven rules are about one source (indexed), two look at
every indicator. Prints both times, the difference and the ratio. Times are this
process's CPU time (best of --repeat), so other work on the machine does not count.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_repo import write_repository

from tiops.compile import compiled_objects, serialize_bundle
from tiops.load import load_repo
from tiops.memory import paused_gc
from tiops.rules.engine import apply_rules
from tiops.rules.model import RuleSet, load_rules

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
    print(f"objects: {len(repo.objects)}, rules: {len(rule_set.rules)}")
    print(f"compile without rules: {without:.3f} s")
    print(f"compile with rules:    {with_rules:.3f} s")
    print(f"added by rules:        {with_rules - without:.3f} s (rule pass alone: {rules_only:.3f} s)")
    print(f"ratio:                 {with_rules / without:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
