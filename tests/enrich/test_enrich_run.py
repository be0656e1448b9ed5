"""`tiops enrich` end to end: the lock it writes, pruning, refresh, failures, resuming after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from rdap_server import RdapServer

from enrich.helpers import write_mmdb, write_repo
from tiops.cli import main
from tiops.enrich.lock import read_lock, write_lock
from tiops.enrich.rdap import RdapClient, rdap_settings
from tiops.enrich.run import enrich_repo


def test_enrich_writes_geo_and_whois_results_into_the_lock(tmp_path: Path, rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url)
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 0, result.output
    assert "enriched 5 value(s): 2 geo lookup(s)" in result.output
    # www.woodgrove-statements.net is asked for as its registered domain; every name once.
    assert "4 RDAP queries (3 found, 1 not-found; 4 request(s))" in result.output
    lock, findings = read_lock(root / "intel", root)
    assert findings == []
    assert lock.meta["geo"]["backend"] == "shipped" and lock.meta["geo"]["date"]
    assert (lock.geo["8.8.8.8"]["country_code"], lock.geo["8.8.8.8"]["asn"]) == ("US", 15169)
    assert lock.geo["10.0.0.1"] == {"status": "private"}
    assert set(lock.whois) == {"8.8.8.8", "woodgrove-securelogin.net", "www.woodgrove-statements.net", "unknown.net"}
    assert lock.whois["www.woodgrove-statements.net"]["queried"] == "woodgrove-statements.net"
    assert lock.whois["unknown.net"]["status"] == "not-found"
    assert lock.whois["woodgrove-securelogin.net"]["registered"] == "2025-02-20T08:15:00Z"

    # A second run asks nothing: every value has a result.
    before = len(rdap_server.rdap_requests())
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    assert len(rdap_server.rdap_requests()) == before


def test_an_internationalised_name_is_asked_for_and_locked_once_by_its_a_label(tmp_path: Path,
                                                                            rdap_server: RdapServer) -> None:
    # The registry knows the A-label (RFC 9224 section 4; RFC 9082 section 3.1.3): the name in
    # U-labels, in capitals and as a URL host is that one value (an RFC 3986 URL holds the A-label).
    document = json.loads(json.dumps(rdap_server.domains["woodgrove-securelogin.net"]))
    document["ldhName"], document["unicodeName"] = "xn--bcher-kva.net", "bücher.net"
    rdap_server.domains["xn--bcher-kva.net"] = document
    root = write_repo(tmp_path / "repo", rdap_server.url, ["u", "upper", "a", "in_url"], {
        "u": "[domain-name:value = 'bücher.net']", "upper": "[domain-name:value = 'BÜCHER.NET']",
        "a": "[domain-name:value = 'xn--bcher-kva.net']", "in_url": "[url:value = 'https://XN--BCHER-KVA.net/login']"})
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 0, result.output
    assert rdap_server.rdap_requests() == [("/rdap/domain/xn--bcher-kva.net", 200)]
    lock, findings = read_lock(root / "intel", root)
    assert findings == [] and set(lock.whois) == {"xn--bcher-kva.net"}
    assert lock.whois["xn--bcher-kva.net"]["status"] == "found"

    compiled = CliRunner().invoke(main, ["-C", str(root), "compile", "-o", str(tmp_path / "bundle.json")])
    assert compiled.exit_code == 0, compiled.output
    bundle = json.loads((tmp_path / "bundle.json").read_text(encoding="utf-8"))
    carried = [extension["whois"][0]["value"] for obj in bundle["objects"] if obj["type"] == "indicator"
               for extension in obj.get("extensions", {}).values() if "whois" in extension]
    assert carried == ["xn--bcher-kva.net"] * 4


def test_offline_says_how_many_rdap_queries_it_skipped(tmp_path: Path, rdap_server: RdapServer) -> None:
    """--offline names what an online run would ask RDAP (it said "0 RDAP queries skipped" whatever was
    missing), and once the lock holds every answer, none."""
    root = write_repo(tmp_path / "repo", rdap_server.url)
    offline = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"])
    assert offline.exit_code == 0 and "4 RDAP queries skipped (--offline)" in offline.output, offline.output
    assert rdap_server.rdap_requests() == []
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    again = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"])
    assert again.exit_code == 0 and "0 RDAP queries skipped (--offline)" in again.output, again.output
    # Answers older than --refresh are what an online run would ask again.
    stale = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline", "--refresh=0d"])
    assert stale.exit_code == 0 and "4 RDAP queries skipped (--offline)" in stale.output, stale.output


def test_values_nothing_references_are_pruned_and_paths_limit_lookups(tmp_path: Path, rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url)
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"]).exit_code == 0
    assert read_lock(root / "intel", root)[0].whois == {}  # --offline asks no server
    assert rdap_server.rdap_requests() == []
    write_repo(root, rdap_server.url, ["phish", "unknown", "private"])
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", str(root / "intel" / "indicators" / "phish.yaml")])
    assert result.exit_code == 0, result.output
    assert "1 pruned" in result.output
    lock = read_lock(root / "intel", root)[0]
    assert set(lock.geo) == {"10.0.0.1"}
    assert set(lock.whois) == {"woodgrove-securelogin.net"}  # unknown.net is outside the named path


def test_refresh_requeries_old_results_and_failures_are_retried(tmp_path: Path, rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["phish", "unknown"])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    client = RdapClient(rdap_settings(root, {"bootstrap": rdap_server.url, "max_retries": 0}), sleep=lambda s: None,
                        now=lambda: start)
    rdap_server.rate_limit(1)
    report = enrich_repo(root, rdap=client, now=lambda: start)
    assert report.whois_by_status == {"failed": 1, "found": 1}
    assert read_lock(root / "intel", root)[0].whois["unknown.net"]["status"] == "failed"  # recorded, not fatal

    later = start + timedelta(days=10)
    client = RdapClient(client.settings, sleep=lambda s: None, now=lambda: later)
    assert enrich_repo(root, rdap=client, now=lambda: later).whois_queried == 1  # only the failure
    assert enrich_repo(root, rdap=client, refresh=timedelta(days=30), now=lambda: later).whois_queried == 0
    assert enrich_repo(root, rdap=client, refresh=timedelta(days=5), now=lambda: later).whois_queried == 1
    assert enrich_repo(root, rdap=client, refresh=timedelta(0), now=lambda: later).whois_queried == 2
    whois = read_lock(root / "intel", root)[0].whois
    assert {v: e["retrieved"] for v, e in whois.items()} == dict.fromkeys(whois, "2026-01-11T00:00:00Z")
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--refresh=soon"]).exit_code == 2
    too_long = CliRunner().invoke(main, ["-C", str(root), "enrich", "--refresh=99999999999d"])
    assert too_long.exit_code == 2 and "longer than any two STIX timestamps are apart" in too_long.output
    assert enrich_repo(root, rdap=client, refresh=timedelta(days=3_652_000), now=lambda: later).whois_queried == 0


def test_refresh_zero_needs_no_unit(tmp_path: Path, rdap_server: RdapServer) -> None:
    # --refresh=0 was "not a duration like 30d": zero of any unit is no time, the same as 0d.
    root = write_repo(tmp_path / "repo", rdap_server.url, ["phish", "unknown"])
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    for zero in ("--refresh=0", "--refresh=0d"):
        result = CliRunner().invoke(main, ["-C", str(root), "enrich", zero])
        assert result.exit_code == 0 and "2 RDAP queries" in result.output, result.output
        assert "0 geo lookup(s)" in result.output  # an AGE reads RDAP answers again, not the geo database
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--refresh=1"]).exit_code == 2  # a unit is needed


def test_replacing_the_older_of_two_mmdb_files_is_noticed_and_looked_up_again(tmp_path: Path) -> None:
    # GeoLite2-City and GeoLite2-ASN, dated apart; the ASN file replaced by a newer one still older
    # than the City file. The lock named the newest date alone, so neither --check nor a run saw it.
    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["google"])
    (root / "geoip").mkdir()
    (root / "tiops.yaml").write_text("enrichment:\n  geo:\n    backend: mmdb\n    database: geoip/City.mmdb\n"
                                     "    asn_database: geoip/ASN.mmdb\n", encoding="utf-8")
    write_mmdb(root / "geoip" / "City.mmdb", "GeoLite2-City", {"8.8.8.0/24": {
        "country": {"iso_code": "US", "names": {"en": "United States"}}}}, built=datetime(2024, 6, 18, tzinfo=UTC))
    for day, asn in ((1, 15169), (11, 64500)):
        write_mmdb(root / "geoip" / "ASN.mmdb", "GeoLite2-ASN", {"8.8.8.0/24": {
            "autonomous_system_number": asn, "autonomous_system_organization": "GOOGLE"}},
            built=datetime(2024, 6, day, tzinfo=UTC))
        if day == 11:
            check = CliRunner().invoke(main, ["-C", str(root / "intel" / "indicators"), "enrich", "--check", "--offline"])
            assert check.exit_code == 1, check.output
            assert "2024-06-18 + 2024-06-01; this tiops reads GeoLite2-City + GeoLite2-ASN, 2024-06-18 + 2024-06-11" \
                in check.output
        # Started in a folder below the root: the paths are still the root's.
        run = CliRunner().invoke(main, ["-C", str(root / "intel" / "indicators"), "enrich", "--offline"])
        assert run.exit_code == 0, run.output
        lock = read_lock(root / "intel", root)[0]
        assert lock.meta["geo"]["date"] == f"2024-06-18 + 2024-06-{day:02d}"
        assert lock.geo["8.8.8.8"]["asn"] == asn


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_run_stopped_while_writing_a_new_database_results_reads_them_all_again(tmp_path: Path) -> None:
    # lock.json was written before the geo shards: a run stopped between (kill -9, a full disk; here a
    # file size limit the system enforces) left the shipped database's results under the mmdb's name,
    # and the next run and --check took them as the mmdb's, for good.
    import resource

    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["many"], {"many": "[ipv4-addr:value IN ({})]".format(
        ", ".join(f"'8.{a}.{b}.1'" for a in range(1, 21) for b in range(1, 16)))})
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"]).exit_code == 0  # the shipped database
    (root / "tiops.yaml").write_text("enrichment:\n  geo:\n    backend: mmdb\n    database: City.mmdb\n",
                                     encoding="utf-8")
    write_mmdb(root / "City.mmdb", "GeoLite2-City", {"8.0.0.0/8": {
        "country": {"iso_code": "US", "names": {"en": "United States"}},
        "city": {"names": {"en": "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"}}}})

    def small_files() -> None:  # lock.json (about 150 bytes) fits; a shard of 20 long results does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    stopped = subprocess.run([sys.executable, "-m", "tiops", "-C", str(root), "enrich", "--offline", "--no-cache"],
                             preexec_fn=small_files, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 1 and "File too large" in stopped.stderr, stopped.stderr
    check = CliRunner().invoke(main, ["-C", str(root), "enrich", "--check", "--offline"])
    assert check.exit_code == 1 and "its GeoLocation results come from GeoLite2-Country-IPv4IPv6" in check.output, check.output
    rerun = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"])
    assert rerun.exit_code == 0 and "300 geo lookup(s) (GeoLite2-City" in rerun.output, rerun.output
    lock = read_lock(root / "intel", root)[0]
    assert {entry.get("city") for entry in lock.geo.values()} == {
        "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"}


def _stripped(root: Path) -> dict[str, dict[str, object]]:
    lock = read_lock(root / "intel", root)[0]
    return {v: {k: x for k, x in e.items() if k != "retrieved"} for v, e in lock.whois.items()}


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
def test_a_run_killed_with_sigkill_keeps_its_results_and_a_rerun_converges(tmp_path: Path,
                                                                         rdap_server: RdapServer) -> None:
    # 24 registered domains (a run asks each once), which the server does not know: 24 paced requests.
    names = [f"d{n:02d}" for n in range(24)]
    patterns = {name: f"[domain-name:value = 'www.{name}-woodgrove.net']" for name in names}
    reference = write_repo(tmp_path / "reference", rdap_server.url, names, patterns)
    assert CliRunner().invoke(main, ["-C", str(reference), "enrich"]).exit_code == 0
    rdap_server.requests.clear()

    root = write_repo(tmp_path / "repo", rdap_server.url, names, patterns, rpm=600)  # 0.1 s apart
    rdap_server.delay = 0.05
    command = [sys.executable, "-m", "tiops", "-C", str(root), "enrich"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_stripped(root)) < 5:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    kept = _stripped(root)
    assert 5 <= len(kept) < len(names), "the run was killed before it finished and kept what it wrote"
    asked_before = len(rdap_server.rdap_requests())

    rdap_server.delay = 0.0
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert _stripped(root) == _stripped(reference)
    asked_after = len(rdap_server.rdap_requests()) - asked_before
    assert asked_after <= 2 * (len(names) - len(kept)) + 2  # it continued; it did not start over
    assert read_lock(root / "intel", root)[1] == []
    assert not list((root / "intel" / ".enrichment").rglob("*.tmp"))
    assert json.loads((root / "intel" / ".enrichment" / "lock.json").read_text())["format"] == 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")
def test_ctrl_c_keeps_every_answer_had_before_it(tmp_path: Path, rdap_server: RdapServer) -> None:
    # Results are written every second; Ctrl-C (SIGINT) lost the answers had since the last write,
    # requests the registries had paced and answered. Now they are written as the run stops.
    names = [f"d{n:02d}" for n in range(40)]
    patterns = {name: f"[domain-name:value = 'www.{name}-woodgrove.net']" for name in names}
    root = write_repo(tmp_path / "repo", rdap_server.url, names, patterns)
    process = subprocess.Popen([sys.executable, "-m", "tiops", "-C", str(root), "enrich"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(rdap_server.rdap_requests()) < 3:
        time.sleep(0.005)
    rdap_server.delay = 3.0  # the run now waits in a request, as on a slow registry
    time.sleep(0.5)
    answered = {path.rpartition("/")[2] for path, _ in rdap_server.rdap_requests()}
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=30)
    assert process.returncode == 130 and "interrupted" in errors, errors
    assert 3 <= len(answered) < len(names)
    locked = read_lock(root / "intel", root)
    assert locked[1] == []  # a lock every command reads
    assert {value.removeprefix("www.") for value in locked[0].whois} == answered
    assert not list((root / "intel" / ".enrichment").rglob("*.tmp"))
    rdap_server.delay = 0.0
    rerun = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert rerun.exit_code == 0, rerun.output
    assert f"{len(names) - len(answered)} RDAP queries" in rerun.output  # it asks only for the rest


def test_a_second_run_at_once_stops_before_asking_and_the_first_finishes(tmp_path: Path,
                                                                         rdap_server: RdapServer) -> None:
    # Two runs at once asked every registry twice, and each deleted the other's half-written shard
    # (write_lock clears what a killed run left), so one failed with "cannot write ... No such file".
    names = [f"d{n:02d}" for n in range(12)]
    patterns = {name: f"[domain-name:value = 'www.{name}-woodgrove.net']" for name in names}
    root = write_repo(tmp_path / "repo", rdap_server.url, names, patterns, rpm=600)
    rdap_server.delay = 0.1
    first = subprocess.Popen([sys.executable, "-m", "tiops", "-C", str(root), "enrich"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not rdap_server.rdap_requests():
        time.sleep(0.02)
    assert first.poll() is None, "the first run is still asking"
    second = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert second.exit_code == 2, second.output
    assert "another 'tiops enrich' is running in this repository" in second.output
    assert "Traceback" not in second.output
    _, errors = first.communicate(timeout=120)
    assert first.returncode == 0, errors
    assert len(rdap_server.rdap_requests()) == len(names)  # each name asked once, by the first run
    assert set(_stripped(root)) == {f"www.{name}-woodgrove.net" for name in names}
    again = CliRunner().invoke(main, ["-C", str(root), "enrich"])  # the lock is free once a run ends
    assert again.exit_code == 0 and "0 RDAP queries" in again.output, again.output


def test_a_bad_enrichment_setting_is_a_located_config_finding(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["private"])
    (root / "tiops.yaml").write_text("enrichment:\n  rdap:\n    requests_per_minute: 0\n  geo: {backend: online}\n",
                                     encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert result.exit_code == 1
    assert "tiops.yaml" in result.output and "TI110" in result.output
    assert "requests_per_minute" in result.output and "backend" in result.output
    # A pace so slow a run would sleep for hours (or, near zero, wait longer than a clock holds).
    for rate in ("1e-300", "0.001"):
        (root / "tiops.yaml").write_text(f"enrichment:\n  rdap:\n    requests_per_minute: {rate}\n", encoding="utf-8")
        result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--refresh"])
        assert result.exit_code != 0 and "requests_per_minute: " + rate + " is less than the minimum of 0.1" in result.output
        assert "internal error" not in result.output


def test_a_tiops_yaml_with_errors_looks_nothing_up(tmp_path: Path, rdap_server: RdapServer) -> None:
    # A config with errors loads as every default: enrich would have asked the public IANA
    # bootstrap and registries instead of the server the team named.
    root = write_repo(tmp_path / "repo", rdap_server.url, ["phish"])
    text = (root / "tiops.yaml").read_text(encoding="utf-8")
    (root / "tiops.yaml").write_text(text + "    colour: blue\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 1 and "nothing was looked up" in result.output and "colour" in result.output
    assert rdap_server.requests == [] and not (root / "intel" / ".enrichment").exists()


@pytest.mark.parametrize(("key", "value"), [("base_url", "ftp://rdap.example/"), ("base_url", "http://[::1"),
                                            ("base_url", "http://rdap.example:port/"), ("base_url", "https:///x"),
                                            ("bootstrap", "file:///etc/rdap/")])
def test_an_rdap_url_that_is_not_http_is_a_located_config_finding(tmp_path: Path, key: str, value: str) -> None:
    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["private"])
    (root / "tiops.yaml").write_text(f"enrichment:\n  rdap:\n    {key}: '{value}'\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert result.exit_code == 1 and "TI110" in result.output and f"enrichment.rdap.{key}" in result.output
    assert "RFC 7480" in result.output
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 1  # an internal error or a hang before


def test_a_bootstrap_folder_holding_no_registry_file_is_a_failure_not_not_found(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["phish"])
    (root / "tiops.yaml").write_text("enrichment:\n  rdap:\n    bootstrap: no-such-folder\n", encoding="utf-8")
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0  # recorded, never a stopped run
    entry = read_lock(root / "intel", root)[0].whois["woodgrove-securelogin.net"]
    assert entry["status"] == "failed" and "holds none of dns.json" in entry["error"]  # asked again next run
    # Named as tiops.yaml names it: the same lock in every clone, wherever it is checked out.
    assert "registry no-such-folder holds" in entry["error"] and str(tmp_path) not in entry["error"]


SECRET = "S3cretPW-enrich"


def _secret_free(root: Path, *outputs: str) -> None:
    for path in (root / "intel" / ".enrichment").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(encoding="utf-8"), path
    for output in outputs:
        assert SECRET not in output


def test_credentials_in_the_rdap_url_are_sent_but_never_locked_or_shown(tmp_path: Path, rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["google", "phish"])
    port = rdap_server.url.rsplit(":", 1)[1].rstrip("/")
    (root / "tiops.yaml").write_text(f"enrichment:\n  rdap:\n    base_url: http://alice:{SECRET}@127.0.0.1:{port}/rdap/\n"
                                     "    requests_per_minute: 6000\n", encoding="utf-8")
    enriched = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert enriched.exit_code == 0, enriched.output
    lock = read_lock(root / "intel", root)[0]
    assert lock.whois["8.8.8.8"]["status"] == "found"  # the server answered: the request went out as configured
    assert {entry["server"] for entry in lock.whois.values()} == {f"http://127.0.0.1:{port}/rdap/"}
    explained = CliRunner().invoke(main, ["-C", str(root), "explain", "indicator--00000000-0000-4000-8000-000000000000"])
    assert f"RDAP http://127.0.0.1:{port}/rdap/" in explained.output
    compiled = CliRunner().invoke(main, ["-C", str(root), "compile"])
    assert compiled.exit_code == 0, compiled.output
    _secret_free(root, enriched.output, explained.output, compiled.output,
                 (root / "dist" / "bundle.json").read_text(encoding="utf-8"))


def test_credentials_in_an_unreachable_bootstrap_url_stay_out_of_the_failures(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["phish"])
    (root / "tiops.yaml").write_text(f"enrichment:\n  rdap:\n    bootstrap: http://alice:{SECRET}@127.0.0.1:9/\n"
                                     "    timeout: 2\n    max_retries: 0\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 0, result.output
    entry = read_lock(root / "intel", root)[0].whois["woodgrove-securelogin.net"]
    assert entry["status"] == "failed" and "http://127.0.0.1:9/" in entry["error"]
    _secret_free(root, result.output)


def test_credentials_in_a_url_that_is_not_http_are_masked_in_the_finding(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["private"])
    (root / "tiops.yaml").write_text(f"enrichment:\n  rdap:\n    base_url: 'ftp://alice:{SECRET}@rdap.example/'\n",
                                     encoding="utf-8")
    for command in (["validate"], ["compile"], ["validate", "--format", "json"]):
        result = CliRunner().invoke(main, ["-C", str(root), *command])
        assert result.exit_code == 1 and "TI110" in result.output and "alice:***@" in result.output
        _secret_free(root, result.output)


def test_paths_outside_the_repository_are_a_usage_error(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["private"])
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline", str(tmp_path)])
    assert result.exit_code == 2 and "is not inside the repository" in result.output


def _offline_repo(tmp_path: Path) -> Path:
    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["google", "private"])
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"]).exit_code == 0
    return root


def test_a_lock_file_name_that_is_not_utf8_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    root = _offline_repo(tmp_path)
    (root / "intel" / ".enrichment" / "geo" / os.fsdecode(b"\xff.json")).write_bytes(b"{}\n")
    for command in (["validate"], ["compile"], ["compile", "--no-cache"]):
        result = CliRunner().invoke(main, ["-C", str(root), *command])
        assert result.exit_code == 0 and "internal error" not in result.output, (command, result.output)
        assert ("TI151" if command == ["validate"] else "1 warning(s)") in result.output


def test_a_folder_where_a_lock_file_goes_stops_enrich_before_any_lookup(tmp_path: Path,
                                                                         rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["google", "phish"])
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"]).exit_code == 0
    geo = root / "intel" / ".enrichment" / "geo"
    shard = next(geo.glob("*.json"))
    shard.unlink()
    shard.mkdir()
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 2 and "is a folder where a lock file goes" in result.output, result.output
    assert rdap_server.rdap_requests() == [] and not list(geo.glob(".*.tmp"))
    shard.rmdir()
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0  # and then it converges


def test_a_file_where_a_lock_section_goes_is_a_finding_and_stops_enrich(tmp_path: Path,
                                                                        rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["google", "phish"])
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    assert CliRunner().invoke(main, ["-C", str(root), "compile"]).exit_code == 0
    whois = root / "intel" / ".enrichment" / "whois"
    for shard in whois.iterdir():
        shard.unlink()
    whois.rmdir()
    whois.write_text("not a folder\n", encoding="utf-8")
    for command in (["validate"], ["compile"]):  # the second through the build cache of the compile above
        result = CliRunner().invoke(main, ["-C", str(root), *command])
        assert result.exit_code == 1 and "TI150" in result.output and "whois must be a folder" in result.output
    before = len(rdap_server.rdap_requests())
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 2 and "intel/.enrichment/whois is not a folder" in result.output, result.output
    assert len(rdap_server.rdap_requests()) == before


def test_a_link_where_a_lock_file_goes_is_replaced_by_the_file(tmp_path: Path) -> None:
    root = _offline_repo(tmp_path)
    shard = next((root / "intel" / ".enrichment" / "geo").glob("*.json"))
    outside = tmp_path / "outside.json"
    outside.write_bytes(shard.read_bytes())
    shard.unlink()
    shard.symlink_to(outside)
    assert "TI108" in CliRunner().invoke(main, ["-C", str(root), "validate"]).output
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"]).exit_code == 0
    assert not shard.is_symlink() and shard.read_bytes() == outside.read_bytes()
    assert CliRunner().invoke(main, ["-C", str(root), "validate"]).exit_code == 0


def test_a_refresh_that_fails_keeps_the_earlier_answer(tmp_path: Path, rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["phish", "unknown"])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    client = RdapClient(rdap_settings(root, {"bootstrap": rdap_server.url, "max_retries": 0}), sleep=lambda s: None,
                        now=lambda: start)
    enrich_repo(root, rdap=client, now=lambda: start)
    before = read_lock(root / "intel", root)[0].whois
    assert {entry["status"] for entry in before.values()} == {"found", "not-found"}
    later = start + timedelta(days=10)
    rdap_server.rate_limit(100)  # every lookup of the refresh fails
    client = RdapClient(client.settings, sleep=lambda s: None, now=lambda: later)
    report = enrich_repo(root, rdap=client, refresh=timedelta(0), now=lambda: later)
    assert report.whois_by_status == {"failed": 2} and report.kept_after_failure == 2
    assert read_lock(root / "intel", root)[0].whois == before  # as old as it was: the next refresh asks again


def test_a_path_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    root = _offline_repo(tmp_path)
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline", str(root / "intel" / "indicatorz")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_only_a_bare_refresh_reads_the_geo_database_again(tmp_path: Path, rdap_server: RdapServer) -> None:
    # Geo results are dated by their database, not by when they were read (docs/enrich.md).
    root = write_repo(tmp_path / "repo", rdap_server.url)
    assert enrich_repo(root, offline=True).geo_looked_up == 2
    assert enrich_repo(root, offline=True).geo_looked_up == 0
    assert enrich_repo(root, offline=True, refresh=timedelta(days=30)).geo_looked_up == 0
    assert enrich_repo(root, offline=True, refresh=timedelta(0)).geo_looked_up == 0
    assert enrich_repo(root, offline=True, refresh=timedelta(0), refresh_geo=True).geo_looked_up == 2
    # The command: '--refresh=0d' is an age like any other; only a bare '--refresh' reads geo again.
    for refresh, geo in (["--refresh=0d", "0 geo lookup(s)"], ["--refresh", "2 geo lookup(s)"]):
        result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline", refresh])
        assert result.exit_code == 0 and geo in result.output, result.output
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline", "--refresh=-1d"])
    assert result.exit_code == 2 and "--refresh: '-1d' is not an age" in result.output
    # Said as every other refused age is, not in click's usage text.
    assert "tiops: error: --refresh: '-1d'" in result.output and "Usage:" not in result.output
    unread = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline", "--refresh=1y"])
    assert unread.exit_code == 2 and "tiops: error: --refresh: '1y'" in unread.output


def test_a_file_that_does_not_load_holds_back_pruning_rather_than_losing_its_results(
        tmp_path: Path, rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["google", "phish"])
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    before = read_lock(root / "intel", root)[0]
    assert "woodgrove-securelogin.net" in before.whois
    # A typo in the file that names the domain: it does not load, but still names it.
    broken = root / "intel" / "indicators" / "phish.yaml"
    broken.write_text(broken.read_text(encoding="utf-8") + "  oops: [\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline",
                                       str(root / "intel" / "indicators" / "google.yaml")])
    assert result.exit_code == 0, result.output
    assert "0 pruned" in result.output
    assert "nothing pruned: 1 intel file(s) did not load (intel/indicators/phish.yaml)" in result.output
    assert read_lock(root / "intel", root)[0].whois == before.whois
    # Mended, and the file gone: pruned as ever.
    broken.unlink()
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"])
    assert "1 pruned" in result.output and "nothing pruned" not in result.output
    assert "woodgrove-securelogin.net" not in read_lock(root / "intel", root)[0].whois


def test_values_an_ingestion_rule_writes_are_looked_up_and_the_bundle_carries_them(
        tmp_path: Path, rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["google"])
    (root / "rules" / "ingestion").mkdir(parents=True)
    (root / "rules" / "ingestion" / "rewrite.yaml").write_text(
        "- name: Rewrite\n  order: 1\n  object_types: [indicator]\n"
        "  when: {field: pattern, op: equals, value: \"[ipv4-addr:value = '8.8.8.8']\"}\n"
        "  actions:\n    - {set: {pattern: \"[domain-name:value = 'woodgrove-securelogin.net']\"}}\n",
        encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 0, result.output
    lock = read_lock(root / "intel", root)[0]
    # The value as written (rules may read its enrichment) and the value as the rule leaves it.
    assert set(lock.geo) == {"8.8.8.8"}
    assert set(lock.whois) == {"8.8.8.8", "woodgrove-securelogin.net"}
    assert lock.whois["woodgrove-securelogin.net"]["status"] == "found"
    compiled = CliRunner().invoke(main, ["-C", str(root), "compile", "--as-of", "2026-01-01", "-o",
                                         str(tmp_path / "bundle.json")])
    assert compiled.exit_code == 0, compiled.output
    bundle = json.loads((tmp_path / "bundle.json").read_text(encoding="utf-8"))
    indicator = next(obj for obj in bundle["objects"] if obj["type"] == "indicator")
    assert [item["value"] for extension in indicator["extensions"].values()
            for item in extension.get("whois", [])] == ["woodgrove-securelogin.net"]
    # Rules with errors: what they would write is unknown, so their results are not pruned either.
    (root / "rules" / "ingestion" / "rewrite.yaml").write_text("- name: Broken\n  actions: 3\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"])
    assert result.exit_code == 0, result.output
    assert "values the ingestion rules write were not looked up, and nothing pruned: the ingestion rules have errors" \
        in result.output
    assert read_lock(root / "intel", root)[0].whois == lock.whois
    (root / "rules" / "ingestion" / "rewrite.yaml").unlink()
    assert "1 pruned" in CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"]).output  # the rule's value


def test_a_password_with_a_slash_in_the_rdap_url_is_masked_in_every_message(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["private"])
    # RFC 3986 wants the '/' percent-encoded; written as is, the URL is refused and quoted.
    (root / "tiops.yaml").write_text(f"enrichment:\n  rdap:\n    base_url: 'http://alice:{SECRET}/x@127.0.0.1:9/'\n",
                                     encoding="utf-8")
    for command in (["validate"], ["validate", "--format", "json"], ["enrich"]):
        result = CliRunner().invoke(main, ["-C", str(root), *command])
        assert result.exit_code != 0 and "alice:***@" in result.output, result.output
        assert SECRET not in result.output and "/x@" not in result.output
        _secret_free(root, result.output)


@pytest.mark.parametrize("dns_json", [b'{"version": "1.0", "services": [[["net"], ["http://x/"]]', b"[]", b'{"services": 3}'],
                         ids=["truncated", "a list", "no services list"])
def test_a_broken_bootstrap_file_fails_only_the_values_that_need_it(tmp_path: Path, rdap_server: RdapServer,
                                                                    dns_json: bytes) -> None:
    import requests

    root = write_repo(tmp_path / "repo", rdap_server.url, ["google", "phish"])
    folder = root / "bootstrap"
    folder.mkdir()
    for name in ("ipv4.json", "ipv6.json"):
        (folder / name).write_bytes(requests.get(rdap_server.url.rstrip("/") + "/" + name, timeout=10).content)
    (folder / "dns.json").write_bytes(dns_json)
    (root / "tiops.yaml").write_text("enrichment:\n  rdap:\n    bootstrap: bootstrap\n    requests_per_minute: 6000\n",
                                     encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 0, result.output
    whois = read_lock(root / "intel", root)[0].whois
    assert whois["8.8.8.8"]["status"] == "found"  # ipv4.json is fine
    assert whois["woodgrove-securelogin.net"]["status"] == "failed"  # asked again by the next run
    assert "dns.json" in whois["woodgrove-securelogin.net"]["error"]


def test_a_user_name_without_a_password_in_the_rdap_url_is_a_finding_not_a_silent_401(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["private"])
    (root / "tiops.yaml").write_text(f"enrichment:\n  rdap:\n    base_url: 'http://{SECRET}@127.0.0.1:9/rdap/'\n",
                                     encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert result.exit_code == 1 and "TI110" in result.output and "carries a user name but no password" in result.output
    assert "'http://127.0.0.1:9/rdap/'" in result.output  # the token written as the user is never shown
    _secret_free(root, result.output)
    # The command that stops on it gives the same advice: masking credentials left it "write 'user:***@'".
    refused = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert refused.exit_code == 1 and "carries a user name but no password" in refused.output
    assert "***" not in refused.output and "('user:@', a colon alone, for an empty one" in refused.output
    _secret_free(root, refused.output)
    (root / "tiops.yaml").write_text(f"enrichment:\n  rdap:\n    base_url: 'http://{SECRET}:@127.0.0.1:9/rdap/'\n",
                                     encoding="utf-8")
    assert "TI110" not in CliRunner().invoke(main, ["-C", str(root), "validate"]).output
    from tiops.redact import redact

    assert SECRET not in redact(f"GET http://{SECRET}:@127.0.0.1:9/ failed")  # the user is the credential there


def test_check_says_what_a_run_would_change_and_looks_nothing_up(tmp_path: Path, rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["google", "private"])

    def check(*flags: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--check", *flags])
        return result.exit_code, result.output

    code, output = check("--offline")  # no lock yet
    assert code == 1 and "2 IP value(s) have no GeoLocation result: 10.0.0.1, 8.8.8.8" in output
    assert "run 'tiops enrich --offline'" in output
    assert not (root / "intel" / ".enrichment").exists()  # nothing written
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"]).exit_code == 0
    assert check("--offline") == (0, "the enrichment lock is up to date: GeoLocation results for the 2 value(s) "
                                     "the intel names\n")
    # Without --offline the WHOIS results count too; a private address is never looked up.
    code, output = check()
    assert code == 1 and "1 value(s) have no WHOIS (RDAP) result: 8.8.8.8\n" in output
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    assert check()[0] == 0
    # A pull request that adds an indicator without running tiops enrich, or removes one.
    write_repo(root, rdap_server.url, ["private", "phish"])
    code, output = check()
    assert code == 1
    assert "1 value(s) have no WHOIS (RDAP) result: woodgrove-securelogin.net" in output
    assert "2 result(s) are for values nothing names any more: geo 8.8.8.8, whois 8.8.8.8" in output
    before = len(rdap_server.rdap_requests())
    assert check()[0] == 1 and len(rdap_server.rdap_requests()) == before  # still nothing asked
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--check", "--refresh"]).exit_code == 2


def test_check_counts_a_failed_lookup_as_recorded_and_names_another_database(tmp_path: Path,
                                                                            rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["google", "unknown"])
    client = RdapClient(rdap_settings(root, {"bootstrap": rdap_server.url, "max_retries": 0}), sleep=lambda s: None)
    rdap_server.rate_limit(1)
    assert enrich_repo(root, rdap=client).whois_by_status == {"failed": 1, "found": 1}
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--check"])
    assert result.exit_code == 0, result.output
    assert "1 failed RDAP lookup(s) recorded, retried by the next 'tiops enrich'" in result.output
    lock_json = root / "intel" / ".enrichment" / "lock.json"
    meta = json.loads(lock_json.read_text())
    meta["geo"]["date"] = "2001-01-01"  # results read from an older database
    lock_json.write_text(json.dumps(meta))
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--check", "--offline"])
    assert result.exit_code == 1 and "its GeoLocation results come from" in result.output
    assert "2001-01-01; this tiops reads" in result.output


# --- redirects: the lock names the server that answered (RFC 7480 section 5.2) -------------


def test_the_lock_and_explain_name_the_server_a_redirect_reached(tmp_path: Path, rdap_server: RdapServer,
                                                                  rdap_target: RdapServer) -> None:
    # The registry (rdap_server, named by the bootstrap) sends the client to the registrar (rdap_target).
    path = "/rdap/domain/woodgrove-securelogin.net"
    rdap_server.redirect(path, rdap_target.url + path[1:])
    root = write_repo(tmp_path / "repo", rdap_server.url, ["phish"])
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 0, result.output
    assert "1 RDAP query (1 found; 2 request(s))" in result.output  # both hops are requests
    entry = read_lock(root / "intel", root)[0].whois["woodgrove-securelogin.net"]
    assert (entry["server"], entry["redirected_from"]) == (rdap_target.url + path[1:], rdap_server.url + "rdap/")
    explained = CliRunner().invoke(main, ["-C", str(root), "explain", "indicator--00000000-0000-4000-8000-000000000000"])
    assert f"from RDAP {rdap_target.url}{path[1:]} (redirected from {rdap_server.url}rdap/)" in explained.output
    # Written again from the same answers at the same time, the lock is the same bytes.
    later = datetime(2026, 3, 1, tzinfo=UTC)

    def refreshed() -> dict[Path, bytes]:
        client = RdapClient(rdap_settings(root, {"bootstrap": rdap_server.url}), sleep=lambda s: None, now=lambda: later)
        enrich_repo(root, rdap=client, refresh=timedelta(0), now=lambda: later)
        return {p: p.read_bytes() for p in (root / "intel" / ".enrichment").rglob("*.json")}

    assert refreshed() == refreshed()


# --- an answer about another name or network, already in the lock (RFC 9083 5.3, 5.4) -------

# What a misconfigured or hostile server answers for woodgrove-dyn.net: Google's registration.
GOOGLE_COM = {"objectClassName": "domain", "ldhName": "GOOGLE.COM",
              "events": [{"eventAction": "registration", "eventDate": "1997-09-15T04:00:00Z"}],
              "entities": [{"roles": ["registrar"], "vcardArray": ["vcard", [["fn", {}, "text", "MarkMonitor Inc."]]]}]}
DYN = {"dyn": "[domain-name:value = 'js001.woodgrove-dyn.net']", "dns": "[ipv4-addr:value = '8.8.4.4']"}


def _seeded(root: Path, entries: dict[str, dict[str, object]]) -> None:
    """The lock with ``entries`` as an older tiops (or a hand) wrote them."""
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--offline"]).exit_code == 0
    lock = read_lock(root / "intel", root)[0]
    lock.whois.update(entries)
    write_lock(root / "intel", lock)


def _older(server: RdapServer, **fields: object) -> dict[str, object]:
    return {"status": "found", "server": server.url + "rdap/", "retrieved": "2026-01-01T00:00:00Z", **fields}


def test_a_network_answer_for_another_range_in_the_lock_is_asked_again_and_a_failure_replaces_it(
        tmp_path: Path, rdap_server: RdapServer) -> None:
    # An older tiops locked 8.8.4.4 with the answer for 8.8.8.0 - 8.8.8.255, which does not hold it:
    # the lock alone shows it (its "network"), so any run asks again, and a failed lookup does not keep it.
    root = write_repo(tmp_path / "repo", rdap_server.url, ["dns"], DYN)
    _seeded(root, {"8.8.4.4": _older(rdap_server, network="8.8.8.0 - 8.8.8.255", network_name="GOGL")})
    rdap_server.rate_limit(100, retry_after="0")
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])  # no --refresh: it is no answer at all
    assert result.exit_code == 0, result.output
    assert "1 earlier answer(s) about another name or network replaced by the failure" in result.output
    entry = read_lock(root / "intel", root)[0].whois["8.8.4.4"]
    assert entry["status"] == "failed" and "HTTP 429" in entry["error"] and "network_name" not in entry
    rdap_server.rate_limit(0)
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0  # a failure: asked again
    assert read_lock(root / "intel", root)[0].whois["8.8.4.4"]["status"] == "not-found"  # what the server knows


def test_a_domain_answer_an_older_tiops_locked_for_another_name_does_not_survive_a_refresh(
        tmp_path: Path, rdap_server: RdapServer) -> None:
    # Locked before tiops checked ldhName, and before it kept it: the entry cannot show what it was
    # about, so a plain run leaves it; a refresh finds the server answering about GOOGLE.COM, and the
    # failure replaces the answer that was most likely that one, rather than keeping it forever.
    rdap_server.domains["woodgrove-dyn.net"] = GOOGLE_COM
    root = write_repo(tmp_path / "repo", rdap_server.url, ["dyn"], DYN)
    _seeded(root, {"js001.woodgrove-dyn.net": _older(rdap_server, queried="woodgrove-dyn.net",
                                                     registrar="MarkMonitor Inc.", registered="1997-09-15T04:00:00Z")})
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    assert rdap_server.rdap_requests() == []
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--refresh"])
    assert result.exit_code == 0, result.output
    assert "1 earlier answer(s) about another name or network replaced by the failure" in result.output
    entry = read_lock(root / "intel", root)[0].whois["js001.woodgrove-dyn.net"]
    assert entry["status"] == "failed" and "the answer is for GOOGLE.COM, not woodgrove-dyn.net" in entry["error"]
    assert (entry["ldh_name"], entry["queried"]) == ("google.com", "woodgrove-dyn.net") and "registrar" not in entry
    compiled = CliRunner().invoke(main, ["-C", str(root), "compile", "-o", str(tmp_path / "bundle.json")])
    assert compiled.exit_code == 0 and b"MarkMonitor" not in (tmp_path / "bundle.json").read_bytes()


def test_a_failed_refresh_still_keeps_an_answer_that_was_about_its_value(tmp_path: Path,
                                                                         rdap_server: RdapServer) -> None:
    # The server now answers about another name, but the lock shows its earlier answer was about
    # woodgrove-dyn.net: a server gone wrong is an outage of a kind, and the answer stays.
    rdap_server.domains["woodgrove-dyn.net"] = GOOGLE_COM
    root = write_repo(tmp_path / "repo", rdap_server.url, ["dyn", "dns"], DYN)
    shown = _older(rdap_server, queried="woodgrove-dyn.net", ldh_name="woodgrove-dyn.net", registrar="Dyn Registrar")
    network = _older(rdap_server, network="8.8.4.0 - 8.8.4.255", network_name="GOGL")
    _seeded(root, {"js001.woodgrove-dyn.net": shown, "8.8.4.4": network})
    later = datetime(2026, 3, 1, tzinfo=UTC)
    client = RdapClient(rdap_settings(root, {"bootstrap": rdap_server.url, "max_retries": 0}), sleep=lambda s: None,
                        now=lambda: later)
    report = enrich_repo(root, rdap=client, refresh=timedelta(0), now=lambda: later)
    assert report.whois_by_status == {"failed": 1, "not-found": 1}
    assert (report.kept_after_failure, report.dropped_foreign) == (1, 0)
    assert read_lock(root / "intel", root)[0].whois["js001.woodgrove-dyn.net"] == shown
    # And an answer that cannot show what it was about survives a failure that says nothing of it (429).
    unshown = {k: v for k, v in shown.items() if k != "ldh_name"}
    _seeded(root, {"js001.woodgrove-dyn.net": unshown})
    rdap_server.rate_limit(100, retry_after="0")
    client = RdapClient(client.settings, sleep=lambda s: None, now=lambda: later)  # a run of its own
    report = enrich_repo(root, rdap=client, refresh=timedelta(0), now=lambda: later)
    assert report.whois_by_status == {"failed": 2}
    assert (report.kept_after_failure, report.dropped_foreign) == (2, 0)
    assert read_lock(root / "intel", root)[0].whois["js001.woodgrove-dyn.net"] == unshown


def test_check_names_answers_about_another_name_or_network(tmp_path: Path, rdap_server: RdapServer) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["dyn", "dns"], DYN)
    _seeded(root, {"js001.woodgrove-dyn.net": _older(rdap_server, queried="woodgrove-dyn.net", ldh_name="google.com"),
                   "8.8.4.4": _older(rdap_server, network="8.8.8.0 - 8.8.8.255")})
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--check"])
    assert result.exit_code == 1, result.output
    assert ("2 WHOIS (RDAP) result(s) are about another name or network than their value: "
            "js001.woodgrove-dyn.net, 8.8.4.4") in result.output
    assert rdap_server.requests == []
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--check", "--offline"]).exit_code == 0


@pytest.mark.parametrize("answer", [{}, {"objectClassName": "entity"}, {"objectClassName": "ip network"}])
def test_a_refresh_answered_by_no_domain_object_keeps_the_earlier_answer(tmp_path: Path, rdap_server: RdapServer,
                                                                         answer: dict[str, str]) -> None:
    # RFC 9083 section 4.7: objectClassName is required, and a domain lookup is answered by a
    # domain object (5.3). Anything else is a failure, which keeps the good answer on refresh.
    root = write_repo(tmp_path / "repo", rdap_server.url, ["phish"])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    client = RdapClient(rdap_settings(root, {"bootstrap": rdap_server.url, "max_retries": 0}), sleep=lambda s: None,
                        now=lambda: start)
    enrich_repo(root, rdap=client, now=lambda: start)
    before = read_lock(root / "intel", root)[0].whois
    assert before["woodgrove-securelogin.net"]["status"] == "found"
    rdap_server.domains["woodgrove-securelogin.net"] = answer
    later = start + timedelta(days=10)
    client = RdapClient(client.settings, sleep=lambda s: None, now=lambda: later)
    report = enrich_repo(root, rdap=client, refresh=timedelta(0), now=lambda: later)
    assert report.whois_by_status == {"failed": 1} and report.kept_after_failure == 1
    assert read_lock(root / "intel", root)[0].whois == before


def test_check_names_an_ip_result_that_holds_no_network(tmp_path: Path, rdap_server: RdapServer) -> None:
    # What an older tiops locked from a domain object answering an IP query: registrar, no range.
    root = write_repo(tmp_path / "repo", rdap_server.url, ["google"])
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    assert CliRunner().invoke(main, ["-C", str(root), "enrich", "--check"]).exit_code == 0
    lock = read_lock(root / "intel", root)[0]
    lock.whois["8.8.8.8"] = {"registrar": "Evil Registrar", "retrieved": "2026-01-01T00:00:00Z",
                             "server": rdap_server.url + "rdap/", "status": "found"}
    write_lock(root / "intel", lock)
    result = CliRunner().invoke(main, ["-C", str(root), "enrich", "--check"])
    assert result.exit_code == 1 and "8.8.8.8" in result.output, result.output
    # A run asks again (the entry counts as no answer) and locks the network's answer.
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    assert read_lock(root / "intel", root)[0].whois["8.8.8.8"]["network"] == "8.8.8.0 - 8.8.8.255"


@pytest.mark.parametrize(("written", "masked"), [
    # The password is "Pw@127.0.0.1:{port}/Tail9" and "p@ss/wo#rd": RFC 3986 ends the authority at
    # the first '/' (or '#') and the userinfo at the last '@' before it.
    ("http://alice:Pw@127.0.0.1:{port}/Tail9@127.0.0.1:{port}/rdap/", "'http://alice:***@127.0.0.1:{port}/rdap/'"),
    ("http://user:p@ss/wo#rd@127.0.0.1:{port}/", "'http://user:***@127.0.0.1:{port}/'"),
])
def test_credentials_with_an_at_after_the_host_are_refused_and_never_sent(tmp_path: Path, rdap_server: RdapServer,
                                                                          written: str, masked: str) -> None:
    root = write_repo(tmp_path / "repo", rdap_server.url, ["google", "phish"])
    port = rdap_server.url.rsplit(":", 1)[1].rstrip("/")
    (root / "tiops.yaml").write_text(f"enrichment:\n  rdap:\n    base_url: '{written.format(port=port)}'\n"
                                     "    requests_per_minute: 6000\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 1 and masked.format(port=port) in result.output, result.output  # tiops.yaml's error
    checked = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert checked.exit_code == 1 and "tiops.yaml:3:5: error TI110" in checked.output, checked.output
    for output in (result.output, checked.output):
        assert masked.format(port=port) in output
        for part in ("Pw", "Tail9", "p@ss", "wo#rd", "/wo"):
            assert part not in output
    assert rdap_server.requests == []  # nothing sent, to any host
    assert "whois" not in {path.parent.name for path in (root / "intel" / ".enrichment").rglob("*.json")}


def test_the_lock_names_a_configured_server_without_query_or_fragment(rdap_server: RdapServer) -> None:
    client = RdapClient(rdap_settings(Path("."), {"base_url": rdap_server.url + "rdap/#Tail9", "max_retries": 0,
                                                  "requests_per_minute": 6000}), sleep=lambda s: None)
    entry = client.lookup("domain", "woodgrove-securelogin.net")
    assert entry["server"] == rdap_server.url + "rdap/" and "Tail9" not in json.dumps(entry)
