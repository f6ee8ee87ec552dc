"""`make bench-distributed`: trials per hour of one search on 2 worker processes (1 core each)
against 1 process using both cores, same trials, quick-profile shapes; prints the ratio and
writes results/bench/distributed.json.

    python -m solvers.bench.distributed [--trials 6] [--epochs 1] [--steps 50]

Each search runs in its own temporary folder as a separate autoq.py command, so start-up (data,
TensorFlow import, per-trial tracing) counts as it does for a user; no retrain.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from solvers import files

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUTOQ = os.path.join(REPO, "autoq.py")


def timed_search(trials, epochs, steps, workers):
    """Wall seconds of one search of `trials` trials (workers=None: a single process)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, AUTOQ, "--trials", str(trials), "--epochs", str(epochs),
                   "--steps-per-epoch", str(steps), "--retrain-epochs", "0",
                   "--results-dir", os.path.join(tmp, "results"),
                   "--tb-dir", os.path.join(tmp, "tb")]
        if workers:
            command += ["--workers", str(workers)]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args(argv)
    single = timed_search(args.trials, args.epochs, args.steps, None)
    double = timed_search(args.trials, args.epochs, args.steps, 2)
    result = {"trials": args.trials, "epochs": args.epochs, "steps_per_epoch": args.steps,
              "cores": len(os.sched_getaffinity(0)),
              "one_process_seconds": single, "two_workers_seconds": double,
              "one_process_trials_per_hour": args.trials * 3600 / single,
              "two_workers_trials_per_hour": args.trials * 3600 / double,
              "speedup": single / double}
    print(f"{args.trials} trials x {args.epochs} epoch(s) x {args.steps} steps, quick shapes:")
    print(f"  1 process, {result['cores']} cores:  {single:7.1f} s  "
          f"{result['one_process_trials_per_hour']:6.0f} trials/hour")
    print(f"  2 workers, 1 core each: {double:7.1f} s  "
          f"{result['two_workers_trials_per_hour']:6.0f} trials/hour")
    print(f"  2 workers / 1 process: {result['speedup']:.2f}x trials per hour")
    os.makedirs(args.out, exist_ok=True)
    files.write_json(os.path.join(args.out, "distributed.json"), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
