"""`make audit`'s dependency check: pip-audit over constraints.txt, every pin as it stands.

`python -m tests.pip_audit constraints.txt`. The pins are exact, so pip-audit neither resolves
nor installs (`--no-deps --disable-pip`); it asks its vulnerability service about each pin.
Where that service cannot be reached (a machine without that network), the check prints SKIPPED
with the reason and passes, since nothing was learnt; any other failure, a known vulnerability
first of all, fails `make audit`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# What pip-audit (requests / urllib3 underneath) says when no answer came back at all.
UNREACHABLE = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|NameResolutionError|"
    r"Failed to establish a new connection|Temporary failure in name resolution|"
    r"Network is unreachable|Connection refused",
)


def unreachable_reason(output: str) -> str | None:
    """The line saying the service could not be reached, or None (pure)."""
    for line in output.splitlines():
        if UNREACHABLE.search(line):
            return line.strip()
    return None


def summarize(report: dict[str, Any]) -> tuple[int, str]:
    """Exit code and message for pip-audit's JSON report (pure).

    Fails on any known vulnerability; SKIPPED when the service answered for no pin at all
    (every dependency comes back with a skip reason, as where its answers are all "not found").
    """
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    if vulnerable:
        lines = [
            f"  {d['name']}=={d['version']}: "
            + ", ".join(
                f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or ['-'])})"
                for v in d["vulns"]
            )
            for d in vulnerable
        ]
        return 1, "pip-audit: known vulnerabilities:\n" + "\n".join(lines)
    audited = [d for d in dependencies if not d.get("skip_reason")]
    if dependencies and not audited:
        reason = dependencies[0]["skip_reason"]
        return 0, (
            f"pip-audit: SKIPPED, the vulnerability service answered for none of the "
            f"{len(dependencies)} pins (first: {reason})"
        )
    return 0, f"pip-audit: no known vulnerabilities in {len(audited)} audited pins"


def main(argv: list[str]) -> int:
    requirements = Path(argv[0] if argv else "constraints.txt")
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(requirements),
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        "json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        reason = unreachable_reason(done.stderr)
        if reason is not None:
            print(f"pip-audit: SKIPPED, the vulnerability service is unreachable here ({reason})")
            return 0
        print(done.stdout + done.stderr, file=sys.stderr)
        return done.returncode or 1
    code, message = summarize(report)
    print(message, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
