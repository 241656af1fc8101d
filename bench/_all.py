"""`make bench`: run every benchmark under bench/, then write bench/results.json, a
Markdown table of each benchmark's ratios against its same-run baseline
(bench/results.md) and one chart of the main ratios (bench/results.png).

    .venv/bin/python bench/_all.py [NAME ...]

Each benchmark prints its figures and ends with one line of JSON; ratio keys start with
`ratio_`, and `target_ratio` states the bar (a target below 1 is a floor, a target of 1
or more a ceiling, as each script's docstring says).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
# Where a benchmark's ratio must stay below its target (lower is better); every other
# ratio must reach it.
CEILINGS = {"read_friends", "read_path"}


def benchmarks() -> list[str]:
    return sorted(p.stem for p in ROOT.glob("*.py") if not p.stem.startswith("_"))


def last_json(output: str) -> dict[str, Any] | None:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def run(name: str) -> dict[str, Any]:
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / f"{name}.py")], capture_output=True, text=True, check=False
    )
    print(done.stdout, end="", flush=True)
    figures = last_json(done.stdout) if done.returncode == 0 else None
    if figures is None:
        print(done.stderr[-2000:], file=sys.stderr)
    return {
        "name": name,
        "ok": figures is not None,
        "seconds": round(time.perf_counter() - started, 1),
        "figures": figures or {},
    }


def ratios(result: dict[str, Any]) -> list[tuple[str, float]]:
    return [
        (k, float(v))
        for k, v in result["figures"].items()
        if (k == "ratio" or k.startswith("ratio_")) and isinstance(v, int | float)
    ]


def target_of(result: dict[str, Any]) -> Any:
    figures = result["figures"]
    return figures.get("target_ratio", figures.get("target"))


def verdict(result: dict[str, Any], ratio: float, target: Any) -> str:
    name = result["name"]
    if isinstance(result["figures"].get("within_target"), bool):
        return "meets" if result["figures"]["within_target"] else "misses"
    if not isinstance(target, int | float):
        return ""
    if name in CEILINGS:
        return "meets" if ratio <= target else "misses"
    return "meets" if ratio >= target else "misses"


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| benchmark | ratio | value | target | |", "|---|---|---:|---:|---|"]
    for result in results:
        if not result["ok"]:
            lines.append(f"| {result['name']} | failed | | | |")
            continue
        target = target_of(result)
        if not ratios(result):
            lines.append(f"| {result['name']} | (figures only) | | | |")
        for key, value in ratios(result):
            mark = verdict(result, value, target)
            lines.append(
                f"| {result['name']} | {key.removeprefix('ratio_')} | {value:g} | "
                f"{target if target is not None else ''} | {mark} |"
            )
    return "\n".join(lines) + "\n"


def chart(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    main = [(r["name"], *ratios(r)[0], target_of(r)) for r in results if ratios(r)]
    figure, axes = plt.subplots(figsize=(8, 0.6 + 0.5 * max(1, len(main))))
    labels = [f"{name}\n{key.removeprefix('ratio_')}" for name, key, _, _ in main]
    values = [value for _, _, value, _ in main]
    axes.barh(labels, values, color="#4c72b0")
    for i, (_, _, value, target) in enumerate(main):
        axes.text(value, i, f" {value:g}", va="center", fontsize=8)
        if isinstance(target, int | float):
            axes.plot([target, target], [i - 0.4, i + 0.4], color="#c44e52", linewidth=2)
    axes.invert_yaxis()
    axes.set_xlabel("ratio against the same-run baseline (red: target)")
    axes.tick_params(axis="y", labelsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def main() -> None:
    names = sys.argv[1:] or benchmarks()
    results = [run(name) for name in names]
    (ROOT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    (ROOT / "results.md").write_text(table)
    chart(results, ROOT / "results.png")
    print(table)
    print(f"wrote {ROOT / 'results.json'}, results.md and results.png")
    if not all(r["ok"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
