"""Files an option names (--output, --out, --trace): a place that cannot take them is a usage error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main


@pytest.mark.parametrize(("command", "what"), [
    (["validate", "--format", "sarif", "--output", "{bad}"], "findings"),
    (["compile", "-o", "{tmp}/bundle.json", "--trace", "{bad}"], "trace"),
    (["plan", "--out", "{bad}"], "plan"),
    (["diff", "HEAD", "--format", "json", "--output", "{bad}"], "diff"),
])
def test_an_output_file_under_a_file_is_a_usage_error(example_repo: Path, tmp_path: Path, command: list[str],
                                                      what: str) -> None:
    subprocess.run(["git", "init", "-q"], cwd=example_repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=example_repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base"],
                   cwd=example_repo, check=True)
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    bad = tmp_path / "a-file" / "out.json"  # its folder is a file: neither made nor written
    args = [arg.replace("{bad}", str(bad)).replace("{tmp}", str(tmp_path)) for arg in command]
    result = CliRunner().invoke(main, ["-C", str(example_repo), *args])
    assert result.exit_code == 2, result.output
    assert f"cannot write the {what} to {bad}" in result.output and "internal error" not in result.output
    good = tmp_path / "made" / "for-it" / "out.json"  # a missing folder is made
    ok = CliRunner().invoke(main, ["-C", str(example_repo), *[a.replace(str(bad), str(good)) for a in args]])
    assert ok.exit_code in (0, 1) and good.is_file(), ok.output


def _bundle(example_repo: Path, tmp_path: Path) -> bytes:
    plain = tmp_path / "plain.json"
    result = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "--no-cache", "--as-of", "2025-01-01",
                                       "-o", str(plain)])
    assert result.exit_code == 0, result.output
    return plain.read_bytes()


def test_a_bundle_named_by_a_link_is_written_through_it(example_repo: Path, tmp_path: Path) -> None:
    expected = _bundle(example_repo, tmp_path)
    real = tmp_path / "published" / "bundle.json"
    real.parent.mkdir()
    real.write_text("old\n", encoding="utf-8")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    for _ in range(2):  # the second through the build cache, reusing the lines of the first
        result = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "--as-of", "2025-01-01", "-o", str(link)])
        assert result.exit_code == 0, result.output
        assert link.is_symlink() and real.read_bytes() == expected
    assert not [p for p in real.parent.iterdir() if p.name != "bundle.json"]  # no partial file left


def test_a_bundle_to_a_named_pipe_or_stdout_is_streamed_whole(example_repo: Path, tmp_path: Path) -> None:
    import os
    import sys
    import threading

    expected = _bundle(example_repo, tmp_path)
    fifo = tmp_path / "bundle.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    done = subprocess.run([sys.executable, "-m", "tiops", "-C", str(example_repo), "compile", "--as-of", "2025-01-01",
                           "-o", str(fifo)], capture_output=True, timeout=120, check=False)
    reader.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert received == [expected] and fifo.is_fifo()
    assert b"wrote" in done.stderr and done.stdout == b""  # the stream is the bundle's alone
    assert b"its record" not in done.stderr  # no record beside a stream
    again = subprocess.run([sys.executable, "-m", "tiops", "-C", str(example_repo), "compile", "--as-of", "2025-01-01",
                            "-o", "/dev/stdout"], capture_output=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert again.stdout == expected and b"wrote" in again.stderr
    assert not Path("/dev/build.json").exists()  # as root, a record beside /dev/stdout landed in /dev
    # Standard output redirected to a file makes /dev/stdout a regular file: still no record in /dev.
    with (tmp_path / "redirected.json").open("wb") as redirected:
        third = subprocess.run([sys.executable, "-m", "tiops", "-C", str(example_repo), "compile", "--as-of",
                                "2025-01-01", "-o", "/dev/stdout"], stdout=redirected, stderr=subprocess.PIPE,
                               timeout=120, check=False)
    assert third.returncode == 0, third.stderr
    assert (tmp_path / "redirected.json").read_bytes() == expected
    assert not Path("/dev/build.json").exists() and b"its record" not in third.stderr


def test_partial_bundles_of_killed_compiles_are_removed_and_a_running_ones_kept(example_repo: Path,
                                                                                tmp_path: Path) -> None:
    import os

    output = tmp_path / "out" / "bundle.json"
    output.parent.mkdir()
    abandoned = output.parent / ".bundle.json.999999999.partial"  # no such process
    running = output.parent / f".bundle.json.{os.getppid()}.partial"  # a process that runs (not this one: its own name)
    other = output.parent / ".other.json.999999999.partial"  # another bundle's
    for path in (abandoned, running, other):
        path.write_bytes(b"{\"type\": \"bundle\", \"obj")
    result = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert not abandoned.exists() and running.exists() and other.exists()


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_a_bundle_in_a_folder_below_dev_gets_its_record(example_repo: Path, tmp_path: Path) -> None:
    import tempfile

    from click.testing import CliRunner

    from tiops.cli import main

    # /dev/shm is a tmpfs of regular files: only /dev itself, /dev/fd and /proc/*/fd name streams.
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        target = Path(folder) / "bundle.json"
        result = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "--as-of", "2025-01-01", "-o", str(target)])
        assert result.exit_code == 0 and (Path(folder) / "build.json").is_file(), result.output
