"""What this interpreter's environment holds that differs from a lock file: `make test-latest` prints it
before running the suite on the newest versions, so the upgrade `make lock` would take is in view."""
from __future__ import annotations

import re
import sys
from importlib.metadata import distributions
from pathlib import Path


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(lock_file: str) -> None:
    pinned = re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)==(\S+)", Path(lock_file).read_text(), re.M)
    locked = {canonical(name): version for name, version in pinned}
    here = {canonical(d.metadata["Name"]): d.version for d in distributions()}
    for tool in ("shokai", "pip", "setuptools", "wheel"):  # the project, the installer and the build backend
        here.pop(tool, None)                                 # (test-latest builds with the newest one, isolated)
        locked.pop(tool, None)
    lines = [f"  {name}: {locked[name]} (lock) -> {here[name]}" for name in sorted(locked.keys() & here.keys())
             if locked[name] != here[name]]
    lines += [f"  {name}: not in the lock -> {here[name]}" for name in sorted(here.keys() - locked.keys())]
    lines += [f"  {name}: {locked[name]} (lock) -> not installed" for name in sorted(locked.keys() - here.keys())]
    print(f"the newest versions pyproject.toml allows, against {lock_file}:")
    print("\n".join(lines) if lines else "  the same as the lock")


if __name__ == "__main__":
    main(sys.argv[1])
