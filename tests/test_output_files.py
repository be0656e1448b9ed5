"""Files an option names (--output, --out, --trace): written whole or not at all (a stream in place);
a place that cannot take them is a usage error."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main

# Every command writing a file an option names (tiops.commands.common.write_output), and what it holds.
_OUTPUT_COMMANDS = pytest.mark.parametrize(("command", "what"), [
    (["validate", "--format", "sarif", "--output", "{bad}"], "findings"),
    (["compile", "-o", "{tmp}/bundle.json", "--trace", "{bad}"], "trace"),
    (["plan", "--out", "{bad}"], "plan"),
    (["diff", "HEAD", "--format", "json", "--output", "{bad}"], "diff"),
])


def _committed(repo: Path) -> None:
    """``diff HEAD`` needs a revision to compare with."""
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base"],
                   cwd=repo, check=True)


@_OUTPUT_COMMANDS
def test_an_output_file_under_a_file_is_a_usage_error(example_repo: Path, tmp_path: Path, command: list[str],
                                                      what: str) -> None:
    _committed(example_repo)
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    bad = tmp_path / "a-file" / "out.json"  # its folder is a file: neither made nor written
    args = [arg.replace("{bad}", str(bad)).replace("{tmp}", str(tmp_path)) for arg in command]
    result = CliRunner().invoke(main, ["-C", str(example_repo), *args])
    assert result.exit_code == 2, result.output
    assert f"cannot write the {what} to {bad}" in result.output and "internal error" not in result.output
    good = tmp_path / "made" / "for-it" / "out.json"  # a missing folder is made
    ok = CliRunner().invoke(main, ["-C", str(example_repo), *[a.replace(str(bad), str(good)) for a in args]])
    assert ok.exit_code in (0, 1) and good.is_file(), ok.output


@_OUTPUT_COMMANDS
def test_an_output_file_is_replaced_by_the_new_one_whole(example_repo: Path, tmp_path: Path, command: list[str],
                                                         what: str) -> None:
    _committed(example_repo)
    out = tmp_path / "saved" / "out.json"
    out.parent.mkdir()
    out.write_bytes(b"the previous output\n")
    os.chmod(out, 0o640)
    before = out.stat().st_ino
    args = [arg.replace("{bad}", str(out)).replace("{tmp}", str(tmp_path)) for arg in command]
    result = CliRunner().invoke(main, ["-C", str(example_repo), *args])
    assert result.exit_code in (0, 1), result.output
    assert json.loads(out.read_bytes())  # the whole new output
    # Written beside and renamed over (a new file), not truncated and written over: an interrupted
    # write leaves the previous file. Its mode stays the one it had.
    assert out.stat().st_ino != before and stat.S_IMODE(out.stat().st_mode) == 0o640, what
    assert [p.name for p in out.parent.iterdir()] == ["out.json"]


@_OUTPUT_COMMANDS
def test_an_output_cut_short_by_a_full_disk_leaves_the_previous_one(example_repo: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   command: list[str], what: str) -> None:
    from full_disk import fill_up_writing

    _committed(example_repo)
    out = tmp_path / "saved" / "out.json"
    out.parent.mkdir()
    out.write_bytes(b"the previous output\n")
    args = [arg.replace("{bad}", str(out)).replace("{tmp}", str(tmp_path)) for arg in command]
    fill_up_writing(monkeypatch, "out.json")
    result = CliRunner().invoke(main, ["-C", str(example_repo), *args])
    assert result.exit_code == 2, result.output
    assert f"cannot write the {what} to {out}: No space left on device" in result.output
    assert "internal error" not in result.output
    assert out.read_bytes() == b"the previous output\n"  # never half a new one (a plan apply would read)
    assert [p.name for p in out.parent.iterdir()] == ["out.json"]  # nothing left beside it


def test_an_output_to_a_named_pipe_or_stdout_is_written_in_place(example_repo: Path, tmp_path: Path) -> None:
    import sys
    import threading

    command = [sys.executable, "-m", "tiops", "-C", str(example_repo), "validate", "--format", "json", "-o"]
    expected = subprocess.run([*command, str(tmp_path / "plain.json")], capture_output=True, timeout=120,
                              check=False)
    assert expected.returncode in (0, 1), expected.stderr
    findings = (tmp_path / "plain.json").read_bytes()
    assert json.loads(findings) is not None
    fifo = tmp_path / "findings.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    to_fifo = subprocess.run([*command, str(fifo)], capture_output=True, timeout=120, check=False)
    reader.join(timeout=60)
    assert to_fifo.returncode == expected.returncode, to_fifo.stderr
    assert received == [findings] and fifo.is_fifo()
    to_pipe = subprocess.run([*command, "/dev/stdout"], capture_output=True, timeout=120, check=False)
    assert to_pipe.returncode == expected.returncode and to_pipe.stdout == findings, to_pipe.stderr
    # Standard output redirected to a file: that file is written, not replaced by a new one (the
    # shell's `>` file keeps its inode; a rename in /dev would fail or swap the file).
    redirected = tmp_path / "redirected.json"
    with redirected.open("wb") as stdout:
        before = redirected.stat().st_ino
        to_file = subprocess.run([*command, "/dev/stdout"], stdout=stdout, stderr=subprocess.PIPE, timeout=120,
                                 check=False)
    assert to_file.returncode == expected.returncode, to_file.stderr
    assert redirected.read_bytes() == findings and redirected.stat().st_ino == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


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
