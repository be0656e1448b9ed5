"""One host, however written: the keys under which `observable = V` compares addresses and names
(tiops/query/keys.py), and the same keys from the report browser's query.js."""

from __future__ import annotations

import ipaddress
import json
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main
from tiops.query.keys import host_key, keyed_condition, keys_column

QUERY_JS = Path(__file__).parents[2] / "tiops" / "report" / "static" / "query.js"


@pytest.mark.parametrize(("written", "key"), [
    ("8.8.8.8", "8.8.8.8"),
    ("8.8.8.8/32", "8.8.8.8"),  # a /32 is one host (Sentinel and many feeds write every IP so)
    (" 8.8.8.8/032 ", "8.8.8.8"),
    ("::ffff:8.8.8.8", "8.8.8.8"),  # IPv4-mapped (RFC 4291 section 2.5.5.2)
    ("::FFFF:808:808/128", "8.8.8.8"),
    ("2001:0DB8::0001", "2001:db8::1"),  # RFC 5952 text
    ("2001:db8:0:0:0:0:0:1/128", "2001:db8::1"),
    ("8.8.8.0/24", "8.8.8.0/24"),  # a wider block stays a block
    ("8.8.8.7/24", "8.8.8.0/24"),
    ("8.8.8.0/255.255.255.0", "8.8.8.0/24"),
    ("::ffff:8.8.8.0/120", "8.8.8.0/24"),
    ("2001:DB8::/32", "2001:db8::/32"),
    ("EVIL.example.", "evil.example"),  # the root's dot (RFC 1034 section 3.1)
    ("bücher.example", "xn--bcher-kva.example"),  # A-labels (RFC 5890 section 2.3.2.1)
    ("BÜCHER.example", "xn--bcher-kva.example"),
    ("faß.de", "xn--fa-hia.de"),  # IDNA 2008, nontransitional
    ("*.evil.example", None),  # a wildcard names every host under a domain, not the domain
    (".evil.example", None),
    ("08.8.8.8", "08.8.8.8"),  # not 8.8.8.8: an address has no leading zeros (inet_pton), so itself only
    ("aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f", None),
    ("C:\\Windows\\evil.exe", None),
    (64496, None),
])
def test_the_key_of_a_host_written_another_way(written: object, key: str | None) -> None:
    assert host_key(written) == key


def test_only_keys_that_differ_from_the_value_are_kept() -> None:
    assert keys_column([["8.8.8.8", "evil.example", "EVIL.example"]]) == [None]  # equality folds case already
    assert keys_column([["8.8.8.8/32", "::ffff:8.8.8.8", "EVIL.example."]]) == [["8.8.8.8", "evil.example"]]
    assert keys_column([None]) == [None]


def test_the_condition_also_compares_keys_and_not_equal_is_its_negation() -> None:
    keyed = keyed_condition({"field": "observable", "op": "equals", "value": "8.8.8.8/32"})
    assert keyed == {"any": [{"field": "observable", "op": "in", "value": ["8.8.8.8/32", "8.8.8.8"]},
                             {"field": "observable key", "op": "in", "value": ["8.8.8.8"]}]}
    assert keyed_condition({"field": "observable", "op": "not-in", "value": ["EVIL.example."]})["not"]["any"][1] == {
        "field": "observable key", "op": "in", "value": ["evil.example"]}
    unkeyed = {"field": "observable", "op": "equals", "value": "aec0"}  # no host: the test as written
    assert keyed_condition(unkeyed) is unkeyed
    contains = {"field": "observable", "op": "contains", "value": "8.8.8.8"}
    assert keyed_condition({"all": [contains]}) == {"all": [contains]}


def _values() -> list[str]:
    """Addresses, blocks and names in many spellings, and values that are neither."""
    rng = random.Random(5952)
    values = ["8.8.8.8", "8.8.8.8/32", "8.8.8.8/33", "8.8.8.8/", "8.8.8.8//32", "8.8.8.8/-1", "8.8.8.8/ 32",
              "256.1.1.1", "1.2.3", "1.2.3.4.5", "1..2.3", "0.0.0.0", "0.0.0.0/0", "255.255.255.255/0.0.0.0",
              "10.0.0.0/255.0.255.0", "10.0.0.0/0.0.255.255", "10.1.2.3/255.255.0.0", "::", "::/0", "::1", "::1/128",
              ":::", "1:::2", "1::2::3", ":1::2", "1::2:", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::",
              "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7::8", "12345::", "g::1", "::ffff:1.2.3.4", "::ffff:1.2.3.04",
              "::1.2.3.4", "1.2.3.4::", "::ffff:0:0/96", "::ffff:0:0/95", "::ffff:10.0.0.0/104", "fe80::1%eth0",
              "2001:db8::/129", "2001:db8::/0x20", "2001:DB8:0:0:1:0:0:1", "2001:db8:0:1:0:0:0:1", "2001:0:0:1::1",
              "evil.example", "EVIL.example.", "evil.example..", "evil..example", "localhost", "localhost.",
              "*.evil.example", " *.evil.example", ".evil.example", "a.*.example", "bücher.example", "BÜCHER.EXAMPLE.",
              "faß.de", "例え.テスト", "пример.рф", "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "bücher\u3002example", "xn--bcher-kva.example",
              "\U0001f4a9.example", "\u2603.example", "a\u00adb.example",
              "münchen.de/path", "user@bücher.example", "evil .example", "evil.example:8080", "a" * 64 + ".example",
              "b." * 130 + "example", "http://evil.example/", "evil@example.com", "1.2.3.4.", "8.8.8", "1234",
              "C:\\Users\\évil.exe", "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f", "", " ", "."]
    for _ in range(300):
        v4 = ipaddress.IPv4Address(rng.getrandbits(32))
        v6 = ipaddress.IPv6Address(rng.getrandbits(128) & ~((1 << rng.choice([0, 16, 32, 64, 96])) - 1))
        prefix = rng.randint(0, 32)
        values += [f"{v4}/{prefix}", f"{v4}/32", f"::ffff:{v4}", f"::FFFF:{v4}/{rng.randint(96, 128)}",
                   f"{v4}/{ipaddress.IPv4Network(f'0.0.0.0/{prefix}').netmask}",
                   v6.exploded, v6.exploded.upper(), str(v6), f"{v6}/{rng.randint(0, 128)}", f"{v6.compressed}/128"]
    return values


def test_the_keys_column_skips_only_values_that_have_no_other_key() -> None:
    values = _values()
    expected = [[key] if (key := host_key(v)) is not None and key != v.casefold() else None for v in values]
    assert keys_column([[v] for v in values]) == expected


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on PATH to run query.js")
def test_the_report_browser_gives_every_value_the_same_key(tmp_path: Path) -> None:
    values = _values()
    runner = tmp_path / "keys.js"
    runner.write_text('global.window = {};\nrequire(process.argv[2]);\n'
                      'const values = JSON.parse(require("fs").readFileSync(0, "utf8"));\n'
                      'process.stdout.write(JSON.stringify(values.map(v => window.TiopsQuery.hostKey(v))));\n',
                      encoding="utf-8")
    done = subprocess.run(["node", str(runner), str(QUERY_JS)], input=json.dumps(values), capture_output=True,
                          text=True, check=True, timeout=60)
    browser = json.loads(done.stdout)
    differ = [(value, host_key(value), key) for value, key in zip(values, browser, strict=True) if host_key(value) != key]
    assert differ == []


# --- tiops query: the repository, its kept view, a bundle file and a store ---------------------

def _indicator(number: int, pattern: str) -> dict[str, object]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
            "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "pattern": pattern,
            "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z"}


SPELLINGS = [
    _indicator(1, "[ipv4-addr:value = '8.8.8.8/32']"),
    _indicator(2, "[ipv6-addr:value = '::ffff:8.8.8.8']"),
    _indicator(3, "[ipv4-addr:value = '8.8.8.0/24']"),
    _indicator(4, "[ipv6-addr:value = '2001:0DB8::0001']"),
    _indicator(5, "[domain-name:value = 'EVIL.example.']"),
    _indicator(6, "[domain-name:value = 'bücher.example']"),
    _indicator(7, "[domain-name:value = 'xn--bcher-kva.example']"),
    _indicator(8, "[x509-certificate:subject = '*.evil.example']"),
    _indicator(9, "[network-traffic:dst_ref.value = '8.8.8.8' AND network-traffic:dst_port = 53]"),
    _indicator(10, "[file:name = 'evil.example.exe']"),
]
SAME_HOST = [
    ("observable = 8.8.8.8", [1, 2, 9]),
    ("observable = 8.8.8.8/32", [1, 2, 9]),
    ("observable = ::FFFF:8.8.8.8", [1, 2, 9]),
    ("observable = 8.8.8.0/255.255.255.0", [3]),  # a block is the block, not an address in it
    ("observable = 8.8.8.0", []),
    ("observable = 2001:db8::1", [4]),
    ("observable = evil.example", [5]),  # not the wildcard
    ("observable = *.EVIL.example", [8]),  # which is equal to itself
    ("observable in [BÜCHER.example, '2001:db8:0:0:0:0:0:1']", [4, 6, 7]),
    ("observable = xn--bcher-kva.example.", [6, 7]),
    ("observable != 8.8.8.8 and observable_type in [ipv4-addr, ipv6-addr]", [3, 4]),
    ("not observable in [evil.example] and observable_type = domain-name", [6, 7]),
    ("observable = 8.8.8.8 and observable = 8.8.8.8/32", [1, 2, 9]),
    ("observable = 8.8.8.8 or observable ends-with .exe", [1, 2, 9, 10]),
]


@pytest.fixture
def spellings(make_repo: Callable[[dict[str, str]], Path]) -> Path:
    return make_repo({"intel/objects.yaml": json.dumps(SPELLINGS, ensure_ascii=False)})


def _found(root: Path, *args: str) -> list[int]:
    result = CliRunner().invoke(main, ["-C", str(root), "query", *args, "--format", "ids"])
    assert result.exit_code == 0, result.output
    return sorted(int(found[-12:]) for found in result.stdout.split())


def test_the_same_host_written_another_way_is_found_wherever_the_query_looks(spellings: Path, tmp_path: Path) -> None:
    for expression, expected in SAME_HOST:  # compiled in memory
        assert _found(spellings, expression) == expected, expression
    assert CliRunner().invoke(main, ["-C", str(spellings), "compile"]).exit_code == 0
    for expression, expected in SAME_HOST:  # the bundle: its view made, then kept with its index
        assert _found(spellings, expression) == expected, expression
        assert _found(spellings, expression) == expected, expression
    bundle = tmp_path / "elsewhere" / "partner.json"
    bundle.parent.mkdir()
    shutil.copy(spellings / "dist" / "bundle.json", bundle)
    for expression, expected in SAME_HOST:  # a bundle file outside any repository
        assert _found(bundle.parent, expression, str(bundle)) == expected, expression
    assert CliRunner().invoke(main, ["-C", str(spellings), "apply", "--auto-approve"]).exit_code == 0
    for expression, expected in SAME_HOST:  # a store's current objects
        assert _found(spellings, "--target", "local", expression) == expected, expression


def test_group_by_observable_counts_values_as_written(spellings: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(spellings), "query", "observable = 8.8.8.8", "--group-by", "observable",
                                       "--format", "json"])
    assert json.loads(result.stdout) == [{"value": "8.8.8.8", "count": 1}, {"value": "8.8.8.8/32", "count": 1},
                                         {"value": "::ffff:8.8.8.8", "count": 1}]
