"""Long fuzz run of the decode path: the properties of tests/test_fuzz.py, with many more examples.

    python scripts/fuzz.py                      # 20,000 examples per payload kind
    python scripts/fuzz.py --seconds 600        # or until ten minutes have passed (whichever comes first)
    python scripts/fuzz.py --only json rows
    python scripts/fuzz.py --keep-going         # after a failure, go on looking for other ones

Each property (one payload kind over every fuzzed route) runs in chunks of fresh random examples until its
example count or its share of the time is used up, and prints one summary line. A failure's falsifying
example and traceback go to stderr; the exit status is 1 if any property failed.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

# Run from anywhere: the strategies and properties live in tests/, which imports bridge/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_fuzz import PAYLOADS, fuzz_settings, make_property

# Examples per hypothesis run: small enough that --seconds is honoured to within a few seconds, large
# enough that the per-run setup is noise.
CHUNK = 500


def _signatures(e: BaseException) -> set[str]:
    """Where each failure in ``e`` was raised (type and innermost frame): the same bug found twice counts once."""
    if isinstance(e, BaseExceptionGroup):
        return set().union(*(_signatures(x) for x in e.exceptions))
    frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    where = f"{Path(frame.filename).name}:{frame.name}" if frame else "?"
    return {f"{type(e).__name__} in {where}"}


def run(payload: str, examples: int, seconds: float | None, keep_going: bool) -> bool:
    """Fuzz one payload kind; prints its summary line, returns whether it passed."""
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=20_000, help="examples per property (default 20000)")
    ap.add_argument("--seconds", type=float, default=None, help="time budget for the whole run, split evenly")
    ap.add_argument("--keep-going", action="store_true", help="after a failure, run on to find other ones")
    ap.add_argument("--only", nargs="+", choices=list(PAYLOADS), default=list(PAYLOADS), help="payload kinds")
    args = ap.parse_args(argv)
    share = None if args.seconds is None else args.seconds / len(args.only)
    ok = [run(p, args.examples, share, args.keep_going) for p in args.only]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
