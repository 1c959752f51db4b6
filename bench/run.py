"""`make bench`: every benchmark in one run, then bench/RESULTS.md.

Creates bench/.venv-litellm (LiteLLM's proxy, kept out of the project's
dependencies) on first use. Raw numbers go to bench/out/results.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from common import BENCH, LITELLM_VENV, machine

LITELLM_SPEC = os.environ.get("BENCH_LITELLM_SPEC", "litellm[proxy]")


def ensure_litellm() -> str | None:
    """LiteLLM's version in its own virtualenv, installing it the first time."""
    python = LITELLM_VENV / "bin" / "python"
    try:
        if not (LITELLM_VENV / "bin" / "litellm").exists():
            print(f"installing {LITELLM_SPEC} into {LITELLM_VENV} (once)...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                           check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", LITELLM_SPEC],
                           check=True)
        return subprocess.run([str(python), "-c", "import importlib.metadata as m;"
                               "print(m.version('litellm'))"], check=True, text=True,
                              capture_output=True).stdout.strip()
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"LiteLLM unavailable, comparing without it: {exc}", flush=True)
        return None


def main() -> int:
    started = time.time()
    import cold_start
    import functions
    import overhead
    import report
    import roundtrips
    import translation

    version = ensure_litellm()
    results: dict[str, Any] = {"machine": machine(), "litellm_version": version,
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    config = None
    if version:
        config = overhead.litellm_config("http://127.0.0.1:9", BENCH / "out" / "litellm-cold.yaml")
    print("cold start of each function, as Lambda starts it...", flush=True)
    results["functions"] = functions.run()
    print("cold start of afk dev and LiteLLM...", flush=True)
    results["cold_start"] = cold_start.run(config)
    print("translation...", flush=True)
    results["translation"] = translation.run()
    print("round trips...", flush=True)
    rt = roundtrips.run()
    (BENCH / "out" / "profile-chat.txt").write_text(rt.pop("profile"))
    results["roundtrips"] = rt
    print("overhead (direct / gateway / litellm)...", flush=True)
    results["overhead"] = overhead.run(with_litellm=bool(version))
    results["seconds"] = time.time() - started
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "results.json").write_text(json.dumps(results, indent=1))
    (BENCH / "RESULTS.md").write_text(report.render(results))
    print(f"wrote bench/RESULTS.md in {results['seconds']:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
