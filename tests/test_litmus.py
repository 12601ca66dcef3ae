"""Debian's litmus WebDAV suite against Packrat: exactly these tests pass.

docs/webdav.md says why each of the others cannot in a key-value store (or
is not offered); the set is asserted whole, so a change either way is seen.
One litmus run (``-k``: its wrapper would stop at the first suite with a
failure) against a server of the module's own.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("litmus") is None, reason="litmus is not installed")

PASSING = {
    "basic": [
        "init",
        "begin",
        "options",
        "put_get",
        "put_get_utf8_segment",
        "mkcol_over_plain",
        "delete",
        "delete_null",
        "delete_fragment",
        "mkcol",
        "delete_coll",
        "mkcol_with_body",
        "finish",
    ],
    "copymove": [
        "init",
        "begin",
        "copy_init",
        "copy_nodestcoll",
        "copy_cleanup",
        "move_cleanup",
        "finish",
    ],
    "props": [
        "init",
        "begin",
        "propfind_invalid",
        "propfind_invalid2",
        "propinit",
        "propextended",
        "propwformed",
        "propinit",
        "propcleanup",
        "finish",
    ],
    "locks": ["init", "begin", "options"],  # then skipped: class 1, no locks
    "http": ["init", "begin", "expect100", "finish"],
}
_OUTCOME = re.compile(r"\s*(?:\d+\.\s+\w+\.*|\.{5,})\s*(pass|FAIL|SKIPPED)\b")


def outcomes(stdout: str) -> dict[str, list[str]]:
    """Each suite's outcomes, test by test, from litmus's output (a warning moves a
    test's outcome, and sometimes its name, to a line of its own: names come from
    the debug log)."""
    found: dict[str, list[str]] = {}
    for line in stdout.replace("\r", "\n").splitlines():
        if suite := re.match(r"-> running `(\w+)'", line):
            found[suite[1]] = []
        elif found and (outcome := _OUTCOME.match(line)):
            found[list(found)[-1]].append(outcome[1])
    return found


def names(debug_log: str) -> list[list[str]]:
    """Each suite's test names in order (numbering starts again at 0 for each)."""
    suites: list[list[str]] = []
    for number, name in re.findall(r"Running test (\d+): (\w+)", debug_log):
        if number == "0":
            suites.append([])
        suites[-1].append(name)
    return suites


def test_litmus_passes_what_a_key_value_store_can(module_server, tmp_path):
    done = subprocess.run(  # -k: every suite, though each has failures
        ["litmus", "-k", f"{module_server.url}/litmus/"],
        cwd=tmp_path,  # its debug.log and child.log
        env={"TESTS": " ".join(PASSING), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    found = outcomes(done.stdout)
    assert list(found) == list(PASSING), done.stdout + done.stderr
    tested = names((tmp_path / "debug.log").read_text())
    passed = {}
    for (suite, results), tests in zip(found.items(), tested, strict=True):
        assert len(results) == len(tests), (suite, results, tests)
        passed[suite] = [test for test, ok in zip(tests, results, strict=True) if ok == "pass"]
    assert passed == PASSING, done.stdout
    assert " 500 " not in done.stdout  # whatever is refused is refused cleanly
    assert "Traceback" not in module_server.log()
