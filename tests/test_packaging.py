"""What an install from a wheel holds (not only an editable install, which reads the tree):
every module, the console's static files and templates, and the urgency defaults."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def test_a_wheel_holds_every_module_and_data_file(tmp_path):
    source = tmp_path / "source"  # a copy: no build/ left by an earlier build is reused
    files = subprocess.run(["git", "-C", str(PROJECT), "ls-files", "-co", "--exclude-standard",
                            "helpdesk", "workers", "setup.cfg", "pyproject.toml", "README.md"],
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (PROJECT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(source)], capture_output=True, text=True,
        timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("helpdesk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(path.relative_to(PROJECT)) for folder in ("helpdesk", "workers")
                for path in (PROJECT / folder).rglob("*.py")
                if "__pycache__" not in path.parts}
    expected |= {str(path.relative_to(PROJECT)) for path in (PROJECT / "helpdesk").rglob("*")
                 if path.suffix in (".js", ".css", ".html", ".json") and path.is_file()}
    assert expected - names == set()  # helpdesk/schemas was missing from wheels
