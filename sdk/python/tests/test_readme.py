"""The README's shell examples, run as a reader would: every ```sh block in order, in one bash
session (``set -euo pipefail``) against a fresh server, with ``agentyard`` on the PATH.

A block that cannot run here (it starts a server, builds, needs TLS files or PostgreSQL) is
preceded in README.md by ``<!-- readme-test: skip (why) -->``; a block that runs until Ctrl-C
(an event stream) by ``<!-- readme-test: stop after N s (why) -->``, and is stopped so. The
README's address ``http://127.0.0.1:7070`` becomes the test server's. Besides every block
exiting 0, every request the examples make must succeed but the refusals the README shows
(``EXPECTED_REFUSALS``): the server's request log is read back to check it, since ``curl -s``
exits 0 on a 409.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
import pytest

from _support import REPO_ROOT, Server, existing_bin

README = REPO_ROOT / "README.md"
README_URL = "http://127.0.0.1:7070"
MARKER = re.compile(r"<!--\s*readme-test:\s*(?P<what>.*?)\s*-->")
SKIP = re.compile(r"skip \((?P<why>.+)\)")
STOP = re.compile(r"stop after (?P<seconds>\d+) s \((?P<why>.+)\)")

# (method, status) of the requests the README shows being refused, in order: the stale update.
EXPECTED_REFUSALS = [("PATCH", 409)]


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    code: str
    skip: str | None = None  # why it is not run
    stop_after: int | None = None  # seconds, for a block that runs until interrupted


def readme_blocks(text: str) -> list[Block]:
    """The ```sh blocks of ``text`` with the marker (if any) on the last non-blank line before
    each. An unknown marker is an error, so a misspelt skip cannot silently run or vanish."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```sh":
            i += 1
            continue
        start = i
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        code = "\n".join(lines[start + 1 : end])
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(before)
        if marker is None:
            blocks.append(Block(start + 1, code))
        elif skip := SKIP.fullmatch(marker["what"]):
            blocks.append(Block(start + 1, code, skip=skip["why"]))
        elif stop := STOP.fullmatch(marker["what"]):
            blocks.append(Block(start + 1, code, stop_after=int(stop["seconds"])))
        else:
            raise AssertionError(f"README.md:{start}: unknown marker {marker[0]!r}")
        i = end + 1
    return blocks


def session_script(blocks: list[Block], url: str) -> str:
    """One bash script running the blocks in order; a failing command names its block."""
    parts = [
        "set -euo pipefail",
        "set -a  # the variables the blocks set reach the blocks run under timeout",
        'trap \'echo "readme-test: README.md:$block failed: $BASH_COMMAND" >&2\' ERR',
    ]
    for b in blocks:
        if b.skip is not None:
            continue
        code = b.code.replace(README_URL, url)
        parts.append(f"block={b.line}; printf '\\n--- README.md:{b.line}\\n'")
        if b.stop_after is None:
            parts.append(code)
        else:
            # 124: stopped by timeout, as Ctrl-C would; anything else non-zero is a failure.
            parts.append(
                f"rc=0; timeout -s INT {b.stop_after} bash -euo pipefail -c {shlex.quote(code)} || rc=$?\n"
                '[ "$rc" = 0 ] || [ "$rc" = 124 ] || { echo "readme-test: README.md:$block failed ($rc)" >&2; exit "$rc"; }'
            )
    return "\n".join(parts) + "\n"


def refusals(server_log: str) -> list[tuple[str, int, str]]:
    """(method, status, route) of every answer >= 400 in the server's JSON log: its one INFO
    line per request."""
    found = []
    for line in server_log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        fields = entry.get("fields", {})
        status = fields.get("status")
        if fields.get("message") == "request" and isinstance(status, int) and status >= 400:
            found.append((fields.get("method", "?"), status, fields.get("route", "?")))
    return found


def test_markers_are_read() -> None:
    blocks = readme_blocks("<!-- readme-test: skip (needs TLS) -->\n```sh\na\n```\n\n```sh\nb\n```\n"
                           "<!-- readme-test: stop after 2 s (a stream) -->\n\n```sh\nc\n```\n")
    assert blocks == [Block(2, "a", skip="needs TLS"), Block(6, "b"), Block(11, "c", stop_after=2)]
    with pytest.raises(AssertionError, match="unknown marker"):
        readme_blocks("<!-- readme-test: skipp (typo) -->\n```sh\na\n```\n")


def test_readme_shell_examples(tmp_path: Path) -> None:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed: the README's examples use it to pull ids and tokens "
                    "out of answers (apt install jq / brew install jq)")
    if shutil.which("curl") is None or shutil.which("timeout") is None:
        pytest.skip("curl or timeout (coreutils) is not installed: the README's examples need them")
    blocks = readme_blocks(README.read_text())
    run = [b for b in blocks if b.skip is None]
    assert run, "no runnable ```sh block in README.md"
    assert any(README_URL in b.code for b in run), f"no runnable block names {README_URL}"

    # A server of its own: the README works in the default namespace and names its agents.
    # Its one INFO line per request gives every answer's status, which the check below reads.
    server = Server("--log-format", "json", log="info")
    try:
        run_session(server, blocks, tmp_path)
    finally:
        server.stop()
        os.unlink(server.log.name)


def run_session(server: Server, blocks: list[Block], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTYARD_")}
    env.update(
        AGENTYARD_URL=server.url,
        PATH=f"{existing_bin().parent}{os.pathsep}{env.get('PATH', '')}",
    )
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", session_script(blocks, server.url)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90,
    )
    took = time.monotonic() - started
    output = f"--- stdout\n{done.stdout[-8000:]}\n--- stderr\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"the README's examples failed ({done.returncode}):\n{output}"
    log = Path(server.log.name).read_text(errors="replace")
    refused = refusals(log)
    assert [(m, s) for m, s, _ in refused] == EXPECTED_REFUSALS, (
        f"requests refused: {refused}; expected only {EXPECTED_REFUSALS}\n{output}"
    )
    run = [b for b in blocks if b.skip is None]
    print(f"README: {len(run)} blocks run, {len(blocks) - len(run)} skipped, in {took:.1f}s")
