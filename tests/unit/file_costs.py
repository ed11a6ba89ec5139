"""Print the costliest unit test files of the last `make unit` (issue 34), from the .cache/unit-files/*.tsv that
tests/unit/conftest.py writes per pytest worker: seconds, CPU seconds of the worker and its waited-for children, tests.

    python tests/unit/file_costs.py [TOP]
"""

from __future__ import annotations

import sys
from pathlib import Path

DIR = Path(__file__).resolve().parents[2] / ".cache" / "unit-files"


def main(argv: list[str]) -> int:
    top = int(argv[0]) if argv else 25
    rows = []
    for tsv in sorted(DIR.glob("*.tsv")):
        for line in tsv.read_text(encoding="utf-8").splitlines():
            name, wall, cpu, n, worker = line.split("\t")
            rows.append((float(cpu), float(wall), int(n), name, worker))
    if not rows:
        print(f"file_costs: nothing in {DIR}")
        return 0
    rows.sort(reverse=True)
    total_cpu, total_wall = sum(r[0] for r in rows), sum(r[1] for r in rows)
    print(
        f"==== unit test files by CPU (worker + waited-for children; containers not counted), top {top} of {len(rows)}"
    )
    print(f"{'cpu-s':>8} {'wall-s':>8} {'tests':>6}  file (worker)")
    for cpu, wall, n, name, worker in rows[:top]:
        print(f"{cpu:8.1f} {wall:8.1f} {n:6d}  {name} ({worker})")
    print(f"{total_cpu:8.1f} {total_wall:8.1f} {sum(r[2] for r in rows):6d}  all files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
