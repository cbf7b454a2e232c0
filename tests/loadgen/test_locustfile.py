"""The load test is found through the package, not the checkout, and both locustfiles give locust
the same classes and flags: the packaged one (what `profiler sweep` runs) and the thin
``loadtests/scrolls.py`` the docs name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import profiler.loadgen
from profiler.loadgen.launch import LOCUSTFILE, locust_command

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILES = [LOCUSTFILE, ROOT / "loadtests" / "scrolls.py"]

#: Loads a locustfile as locust does and prints the user and shape classes it finds.
DISCOVER = """
import json, sys
from locust.util.load_locustfile import load_locustfile
users, shapes = load_locustfile(sys.argv[1])
print(json.dumps({"users": sorted(users), "shapes": [type(s).__name__ for s in shapes]}))
"""


def test_the_locustfile_ships_in_the_package() -> None:
    assert LOCUSTFILE.is_file()
    assert LOCUSTFILE.parent == Path(profiler.loadgen.__file__).resolve().parent
    assert locust_command("http://127.0.0.1:1", 2)[3:5] == ["-f", str(LOCUSTFILE)]


@pytest.mark.integration
@pytest.mark.parametrize("path", LOCUSTFILES, ids=["packaged", "checkout"])
def test_locust_finds_the_user_and_the_shape(path: Path, tmp_path: Path) -> None:
    found = subprocess.run(
        [sys.executable, "-c", DISCOVER, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(found.stdout.splitlines()[-1]) == {
        "users": ["ScrollsUser"],
        "shapes": ["ScrollsStages"],
    }


@pytest.mark.integration
@pytest.mark.parametrize("path", LOCUSTFILES, ids=["packaged", "checkout"])
def test_locust_parses_the_load_tests_flags(path: Path, tmp_path: Path) -> None:
    """Locust's --help is printed before the locustfile loads, so a flag's own error shows it is there."""
    command = locust_command("http://127.0.0.1:1", 1, "--input-lengths", "1024,x")
    command[4] = str(path)
    ran = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 2
    assert 'argument --input-lengths: "x" is not a whole number' in ran.stderr
