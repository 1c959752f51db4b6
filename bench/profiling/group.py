"""A pstats file's own time grouped by package, per unit (a chunk, a request):
`python profiling/group.py FILE UNITS [N]` (bench/LEVERS.md)."""

import collections
import pstats
import sys


def package(file: str, function: str) -> str:
    if "site-packages/" in file:
        return file.split("site-packages/")[1].split("/")[0]
    if "/shared/afk/" in file:
        return "afk." + file.split("/shared/afk/")[1].split("/")[0].replace(".py", "")
    if file == "~":
        return "builtins: " + function.split(" of ")[0][:40]
    return "stdlib " + file.rsplit("/", 1)[-1].replace(".py", "")


if __name__ == "__main__":
    stats = pstats.Stats(sys.argv[1])
    units = float(sys.argv[2])
    groups: collections.Counter[str] = collections.Counter()
    for (file, _line, function), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        groups[package(file, function)] += own
    total = sum(groups.values())
    print(f"total {total / units * 1e6:.1f} us per unit (profiled)")
    for name, own in groups.most_common(int(sys.argv[3]) if len(sys.argv) > 3 else 25):
        print(f"{own / units * 1e6:8.1f} us  {own / total * 100:5.1f}%  {name}")
