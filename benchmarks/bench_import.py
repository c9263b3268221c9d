"""The cost of ``import rlkernel``: alone, and beyond its dependencies.

Each measurement runs in a fresh interpreter, alternating the two sides, median of N:

* ``import rlkernel`` alone (torch is not imported);
* ``import rlkernel`` plus its heavy parts (``rlkernel.envs``, ``rlkernel.specs``) minus the
  same process importing ``tensordict`` (which brings torch): what rlkernel itself adds;
* the number of modules rlkernel adds beyond ``tensordict`` and ``pluggy``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import sys, time, json
t0 = time.perf_counter()
import tensordict, pluggy
t1 = time.perf_counter()
before = set(sys.modules)
{rlkernel}
t2 = time.perf_counter()
print(json.dumps({{"deps": t1 - t0, "rlkernel": t2 - t1, "added": len(set(sys.modules) - before)}}))
"""

ALONE = """
import sys, time, json
t0 = time.perf_counter()
import rlkernel
t1 = time.perf_counter()
print(json.dumps({"alone": t1 - t0, "torch": "torch" in sys.modules, "modules": len(sys.modules)}))
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench_import")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=9)
    args, _ = parser.parse_known_args(argv)
    rounds = 2 if args.quick else args.rounds
    full_import = "import rlkernel, rlkernel.specs, rlkernel.envs; rlkernel.registry.load_plugins()"
    alone, extra, added, torch_loaded = [], [], [], False
    for _ in range(rounds):
        a = _run(ALONE)
        alone.append(a["alone"])
        torch_loaded |= a["torch"]
        b = _run(PROBE.format(rlkernel=full_import))
        extra.append(b["rlkernel"])
        added.append(b["added"])
    result = {
        "import_rlkernel_ms": round(1e3 * statistics.median(alone), 1),
        "imports_torch": torch_loaded,
        "rlkernel_beyond_tensordict_ms": round(1e3 * statistics.median(extra), 1),
        "modules_added_beyond_tensordict": int(statistics.median(added)),
        "target_ms": 100,
    }
    print(
        f"import rlkernel alone: {result['import_rlkernel_ms']} ms (torch imported: {torch_loaded})\n"
        f"rlkernel + specs + envs + plugin discovery beyond tensordict: "
        f"{result['rlkernel_beyond_tensordict_ms']} ms, {result['modules_added_beyond_tensordict']} modules "
        f"(target under 100 ms)"
    )
    return result


if __name__ == "__main__":
    main()
