"""What starting tbscope costs: wall time of a fresh process (median of 5) for ``import tbscope``,
``tbscope --help`` and the Profile tab's plugin entry, and the modules ``python -X importtime`` charges.

Run: ``python benchmarks/startup.py``. Targets (issue 15): 50 ms, 250 ms and 150 ms of wall time, the
interpreter's own start included; a bare ``python -c pass`` is shown beside them.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass (baseline)": "pass",
    "import tbscope": "import tbscope",
    "tbscope --help": "from tbscope.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "Profile tab entry": "import tbscope.profiler.plugin",
}
TARGETS_MS = {"import tbscope": 50, "tbscope --help": 250, "Profile tab entry": 150}


def wall_ms(code: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def heaviest(code: str, count: int = 5) -> list[tuple[int, str]]:
    """The top-level imports that cost most, by ``-X importtime``'s cumulative microseconds."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            if cumulative.isdigit() and not name.startswith(" "):
                rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    base = wall_ms(CASES["python -c pass (baseline)"])
    print(f"{'case':28} {'wall ms':>8} {'over python':>12} {'target':>7}")
    print(f"{'python -c pass (baseline)':28} {base:8.1f}")
    for name, code in list(CASES.items())[1:]:
        ms = wall_ms(code)
        over = ms - base
        target = TARGETS_MS[name]
        print(f"{name:28} {ms:8.1f} {over:12.1f} {target:5d} {'met' if ms <= target else 'MISSED'}")
        print("    heaviest imports: " + ", ".join(f"{n} {us / 1000:.0f} ms" for us, n in heaviest(code)))


if __name__ == "__main__":
    main()
