"""Long fuzz runs: the decode path's properties, the native/Python differential tests, the cargo-fuzz target.

    python scripts/fuzz.py                          # props: tests/test_fuzz.py, 20,000 examples per payload kind
    python scripts/fuzz.py props --seconds 600 --only json rows [--keep-going]
    python scripts/fuzz.py diff                     # native vs Python transcoder, 20,000 examples per shape
    python scripts/fuzz.py diff --only rows json --examples 50000 --seconds 900
    python scripts/fuzz.py cargo --seconds 600      # the cargo-fuzz target over the native wire reader

``props`` runs each property (one payload kind over every fuzzed route) in chunks of fresh random examples
until its example count or its share of the time is used up, and prints one summary line; a failure's
falsifying example and traceback go to stderr.

``diff`` runs the differential tests (tests/test_native_diff.py, test_native_json.py, test_peek.py: both
transcoders must give byte-identical rows and the same row errors) for the chosen shapes, in pytest runs of
``--chunk`` fresh examples per test until the shape's examples or share of the time are used up.

``cargo`` runs ``cargo +nightly fuzz run decode`` in native/ (cargo-fuzz: ``cargo install cargo-fuzz``; the
nightly toolchain: ``rustup toolchain install nightly``) for ``--seconds``, its corpus kept in
native/fuzz/corpus/decode; it prints libFuzzer's final figures (executions, coverage, corpus) and any crash
it saved under native/fuzz/artifacts/.

The exit status is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run from anywhere: the strategies and properties live in tests/, which imports bridge/.
sys.path.insert(0, str(ROOT))

# Examples per hypothesis run: small enough that --seconds is honoured to within a few seconds, large
# enough that the per-run setup is noise.
CHUNK = 500

# The differential tests of each shape (pytest node selections, run from the repository's root).
DIFF_SHAPES: dict[str, list[str]] = {
    "rows": ["tests/test_native_diff.py::test_row_batches_match",
             "tests/test_native_diff.py::test_accepted_row_batches_match"],
    "columns": ["tests/test_native_diff.py::test_column_batches_match",
                "tests/test_native_diff.py::test_accepted_column_batches_match"],
    "json": ["tests/test_native_json.py::test_json_batches_match",
             "tests/test_native_json.py::test_fuzz_json_batches_match",
             "tests/test_native_json.py::test_the_transcoders_give_the_same_rows_and_bodies"],
    # Damaged and glued wire bytes, and the peek against upb.
    "wire": ["tests/test_native_diff.py::test_glued_requests_match",
             "tests/test_native_diff.py::test_damaged_requests_match",
             "tests/test_peek.py"],
}


# -- props --------------------------------------------------------------------------------------------------
def _signatures(e: BaseException) -> set[str]:
    """Where each failure in ``e`` was raised (type and innermost frame): the same bug found twice counts once."""
    if isinstance(e, BaseExceptionGroup):
        return set().union(*(_signatures(x) for x in e.exceptions))
    frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    where = f"{Path(frame.filename).name}:{frame.name}" if frame else "?"
    return {f"{type(e).__name__} in {where}"}


def run_props(payload: str, examples: int, seconds: float | None, keep_going: bool) -> bool:
    """Fuzz one payload kind; prints its summary line, returns whether it passed."""
    from tests.test_fuzz import fuzz_settings, make_property

    tally: Counter[str] = Counter()
    started = time.perf_counter()
    done = 0
    found: set[str] = set()
    while done < examples and (seconds is None or time.perf_counter() - started < seconds):
        n = min(CHUNK, examples - done)
        # derandomize=False: every chunk explores new examples.
        prop = make_property(payload, fuzz_settings(n, derandomize=False), tally)
        done += n
        try:
            prop()
        except (Exception, BaseExceptionGroup) as e:  # the failure, or an ExceptionGroup of several
            new = _signatures(e) - found
            if new:
                found |= new
                print(f"--- {payload}: falsifying example(s) for {', '.join(sorted(new))} ---", file=sys.stderr)
                traceback.print_exception(e, file=sys.stderr)
            if not keep_going:
                break
    elapsed = time.perf_counter() - started
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(tally.items()))
    status = f"FAIL ({len(found)} distinct)" if found else "ok"
    print(f"{payload:<9} {status:<16} {sum(tally.values()):>7} runs in {elapsed:7.1f}s  ({outcomes})", flush=True)
    return not found


# -- diff ---------------------------------------------------------------------------------------------------
def run_diff(shape: str, examples: int, chunk: int, seconds: float | None, keep_going: bool) -> bool:
    """The differential tests of one shape, ``chunk`` fresh examples per test per pytest run."""
    env = {**os.environ, "INGEST_BRIDGE_FUZZ_EXAMPLES": str(chunk)}
    started = time.perf_counter()
    done = runs = failures = 0
    while done < examples and (seconds is None or time.perf_counter() - started < seconds):
        # No per-test timeout: a long chunk is the point here (the suite's 120 s would cut it short).
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            "-p", "no:randomly", "-o", "timeout=0", *DIFF_SHAPES[shape]],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        done += chunk
        runs += 1
        if p.returncode == 5 or (" passed" not in p.stdout and " skipped" in p.stdout):
            print(f"{shape:<9} SKIPPED  (is the native transcoder built?)\n{p.stdout[-500:]}", flush=True)
            return True
        if p.returncode != 0:
            failures += 1
            print(f"--- {shape}: a differential test failed ---\n{p.stdout[-6000:]}{p.stderr[-2000:]}",
                  file=sys.stderr)
            if not keep_going:
                break
    elapsed = time.perf_counter() - started
    status = f"FAIL ({failures} runs)" if failures else "ok"
    print(f"{shape:<9} {status:<16} {done:>7} examples per test ("
          f"{runs} pytest runs) in {elapsed:7.1f}s", flush=True)
    return not failures


# -- cargo --------------------------------------------------------------------------------------------------
STAT = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")


def run_cargo(seconds: int, jobs: int, extra: list[str]) -> bool:
    """``cargo +nightly fuzz run decode`` for ``seconds``; prints its final figures, returns whether it was clean."""
    if shutil.which("cargo") is None:
        print("cargo not found: install Rust (rustup), then cargo-fuzz", file=sys.stderr)
        return False
    native = ROOT / "native"
    corpus = native / "fuzz" / "corpus" / "decode"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts = native / "fuzz" / "artifacts" / "decode"
    before = set(artifacts.glob("*")) if artifacts.exists() else set()
    cmd = ["cargo", "+nightly", "fuzz", "run", "decode", str(corpus), "--",
           f"-max_total_time={seconds}", "-print_final_stats=1", *extra]
    if jobs > 1:
        cmd += [f"-fork={jobs}"]
    print("$ (cd native &&", " ".join(cmd) + ")", flush=True)
    started = time.perf_counter()
    log_path = native / "fuzz" / "last-run.log"
    with log_path.open("w") as out:  # written as it runs: `tail -f` it to follow the run
        p = subprocess.run(cmd, cwd=native, stdout=out, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - started
    log = log_path.read_text(errors="replace")
    if "no such command: `fuzz`" in log:
        print("cargo-fuzz is not installed: cargo install cargo-fuzz", file=sys.stderr)
        return False
    last = STAT.findall(log)
    final = dict(re.findall(r"stat::(\w+):\s+(\d+)", log))
    crashes = sorted(set(artifacts.glob("*")) - before) if artifacts.exists() else []
    done = re.search(r"Done \d+ runs in (\d+) second", log)  # libFuzzer's own time, without the build
    if last:
        execs, cov, ft, corp, size = last[-1]
        took = f"{done.group(1)}s of fuzzing" if done else f"{elapsed:.0f}s"
        print(f"decode: {final.get('number_of_executed_units', execs)} executions in {took} "
              f"({final.get('average_exec_per_sec', '?')}/s), coverage {cov} edges, {ft} features, "
              f"corpus {corp} inputs ({size}), peak RSS {final.get('peak_rss_mb', '?')} MB", flush=True)
    for c in crashes:
        print(f"decode: CRASH saved at {c.relative_to(ROOT)}", flush=True)
    if p.returncode != 0 and not crashes:
        print(f"cargo fuzz exited {p.returncode}:\n{log[-3000:]}", file=sys.stderr)
    print(f"(libFuzzer's output: {log_path.relative_to(ROOT)})", flush=True)
    return p.returncode == 0 and not crashes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode")
    from tests.test_fuzz import PAYLOADS

    props = sub.add_parser("props", help="the decode path's hypothesis properties (tests/test_fuzz.py)")
    props.add_argument("--only", nargs="+", choices=list(PAYLOADS), default=list(PAYLOADS), help="payload kinds")
    diff = sub.add_parser("diff", help="the native/Python differential tests, many more examples")
    diff.add_argument("--only", nargs="+", choices=list(DIFF_SHAPES), default=list(DIFF_SHAPES), help="shapes")
    diff.add_argument("--chunk", type=int, default=2000, help="examples per test per pytest run (default 2000)")
    for p in (props, diff):
        p.add_argument("--examples", type=int, default=20_000, help="examples per property (default 20000)")
        p.add_argument("--seconds", type=float, default=None, help="time budget for the whole run, split evenly")
        p.add_argument("--keep-going", action="store_true", help="after a failure, run on to find other ones")
    cargo = sub.add_parser("cargo", help="the cargo-fuzz target over the native wire reader")
    cargo.add_argument("--seconds", type=int, default=600, help="how long libFuzzer runs (default 600)")
    cargo.add_argument("--jobs", type=int, default=1, help="libFuzzer processes (-fork=N); default 1")
    cargo.add_argument("libfuzzer", nargs="*", help="more libFuzzer flags, after --")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*sub.choices, "-h", "--help"):
        argv.insert(0, "props")  # the mode before there were others
    args = ap.parse_args(argv)
    if args.mode == "cargo":
        return 0 if run_cargo(args.seconds, args.jobs, args.libfuzzer) else 1
    share = None if args.seconds is None else args.seconds / len(args.only)
    if args.mode == "diff":
        chunk = min(args.chunk, args.examples)
        ok = [run_diff(s, args.examples, chunk, share, args.keep_going) for s in args.only]
    else:
        ok = [run_props(p, args.examples, share, args.keep_going) for p in args.only]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
