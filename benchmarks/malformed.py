"""How symml answers malformed input, and the reliability figures of issue 12.

Runs every case of the malformed-input catalogue (`tests/test_malformed.py`)
and counts how each was answered: a symml error (a `SymmlError` subclass),
another error (a traceback from JAX, numpy, diffrax, sympy or Python), no
error at all, or no answer within the time limit (a hang). A symml error
"matches" when it is the class the catalogue expects, with the expected
phrase in its message.

It also measures the figures the issue asks for, side by side in one run:

- the time `symml.Model(...)` takes to build a 20-state implicit model (a
  dense numeric mass matrix `M x' = f(x)`), median of several builds;
- the import time of `symml`: the wall time of `python -c "import symml"`
  and the total that `python -X importtime` reports, medians over runs;
- the outcome of `tests/test_checkpoints.py::test_sigkill_and_resume_is_bit_identical`
  (a fit killed with SIGKILL and resumed gives the uninterrupted result bit
  for bit); skipped with `--quick`.

    python benchmarks/malformed.py [--quick] [--seed N] [--out DIR]
                                   [--before DIR] [--timeout S]

`--out DIR` writes `DIR/summary.json` (`symml_errors`, `other_errors`,
`no_error`, `hangs`, `cases`, the figures, and the cases not answered by a
symml error). `--before DIR` reads an earlier `summary.json` and prints its
counts beside this run's.
"""

import argparse
import importlib.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symml as sm  # noqa: E402
from symml.export import atomic_write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _catalogue():
    spec = importlib.util.spec_from_file_location(
        "test_malformed", ROOT / "tests" / "test_malformed.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def run_case(case, world, timeout: float) -> dict:
    """Call one case; return how it was answered."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.call(world)
    except _Timeout:
        outcome, error = "hang", None
    except Exception as e:  # the point is to see every kind of answer
        outcome = "symml_error" if isinstance(e, sm.SymmlError) else "other_error"
        error = e
    else:
        outcome, error = "no_error", None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.perf_counter() - start
    record = {"id": case.id, "outcome": outcome, "seconds": round(seconds, 3)}
    if error is not None:
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        record["type"] = f"{type(error).__module__}.{type(error).__name__}"
        record["message"] = message[:300]
        record["matched"] = isinstance(error, case.error) and bool(
            re.search(case.match, str(error))
        )
        if outcome == "other_error":
            frames = traceback.extract_tb(error.__traceback__)
            record["raised_in"] = f"{frames[-1].filename}:{frames[-1].lineno}"
    else:
        record["matched"] = False
    return record


def mass_matrix_build_seconds(n: int = 20, repeats: int = 5, seed: int = 0) -> float:
    """Median time of `symml.Model(...)` for `M x' = -x + 0.1 x²` with a dense,
    well-conditioned numeric `n × n` mass matrix `M`."""
    t = sp.Symbol("t")
    xs = sm.states(" ".join(f"x{i}" for i in range(n)), t)
    rng = np.random.default_rng(seed)
    M = np.eye(n) * n + rng.uniform(-1, 1, (n, n))
    M = [[sp.Float(float(v)) for v in row] for row in M]
    equations = [
        sp.Eq(
            sum(M[i][j] * xs[j].diff(t) for j in range(n)),
            -xs[i] + sp.Rational(1, 10) * xs[i] ** 2,
        )
        for i in range(n)
    ]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sm.Model(equations)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def import_seconds(repeats: int) -> dict:
    """Medians over `repeats` fresh interpreters: the wall time of `import
    symml`, and the total of `python -X importtime` (microseconds → s)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    walls, totals = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import symml"], check=True, env=env, cwd=ROOT
        )
        walls.append(time.perf_counter() - start)
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import symml"],
            check=True,
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        last = [ln for ln in out.stderr.splitlines() if ln.rstrip().endswith("symml")]
        totals.append(int(last[-1].split("|")[1]) / 1e6)
    return {
        "import_wall_s_median": statistics.median(walls),
        "import_importtime_s_median": statistics.median(totals),
        "import_repeats": repeats,
    }


def sigkill_resume() -> dict:
    test = "tests/test_checkpoints.py::test_sigkill_and_resume_is_bit_identical"
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            test,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    return {
        "sigkill_resume_test": "passed" if out.returncode == 0 else "failed",
        "sigkill_resume_summary": last,
        "sigkill_resume_s": round(time.perf_counter() - start, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/malformed"))
    parser.add_argument("--before", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    catalogue = _catalogue()
    world = catalogue.World(seed=args.seed)
    start = time.perf_counter()
    records = [run_case(c, world, args.timeout) for c in catalogue.CASES]
    catalogue_seconds = time.perf_counter() - start
    counts = {
        key: sum(r["outcome"] == key for r in records)
        for key in ("symml_error", "other_error", "no_error", "hang")
    }
    summary = {
        "cases": len(records),
        "symml_errors": counts["symml_error"],
        "other_errors": counts["other_error"],
        "no_error": counts["no_error"],
        "hangs": counts["hang"],
        "matched": sum(r["matched"] for r in records),
        "seed": args.seed,
        "quick": args.quick,
        "load_average": os.getloadavg()[0],
        "catalogue_s": round(catalogue_seconds, 1),
        "slowest": sorted(records, key=lambda r: -r["seconds"])[:8],
        "mass_matrix_20_build_s": mass_matrix_build_seconds(seed=args.seed),
        **import_seconds(3 if args.quick else 7),
        **({} if args.quick else sigkill_resume()),
        "not_symml": [r for r in records if r["outcome"] != "symml_error"],
        "unmatched": [
            r for r in records if r["outcome"] == "symml_error" and not r["matched"]
        ],
    }

    print(f"{'':24}{'this run':>10}" + (f"{'before':>10}" if args.before else ""))
    before = (
        json.loads((args.before / "summary.json").read_text()) if args.before else {}
    )
    for key in (
        "cases",
        "symml_errors",
        "other_errors",
        "no_error",
        "hangs",
        "matched",
    ):
        line = f"{key:24}{summary[key]:>10}"
        if before:
            line += f"{before.get(key, '-'):>10}"
        print(line)
    print(f"20-state mass matrix Model(): {summary['mass_matrix_20_build_s']:.3f} s")
    print(
        f"import symml: {summary['import_wall_s_median']:.2f} s wall, "
        f"{summary['import_importtime_s_median']:.2f} s importtime (medians of "
        f"{summary['import_repeats']}; load {summary['load_average']:.1f})"
    )
    if "sigkill_resume_test" in summary:
        print(f"SIGKILL and resume: {summary['sigkill_resume_test']}")
    for r in summary["not_symml"]:
        print(
            f"  {r['outcome']:12} {r['id']}: {r.get('type', '')} {r.get('message', '')}"
        )
    for r in summary["unmatched"]:
        print(f"  unmatched    {r['id']}: {r['type']} {r['message']}")

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    return summary


if __name__ == "__main__":
    main()
