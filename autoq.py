#!/usr/bin/env python
"""autoq: search per-layer quantizers of base7 with Keras Tuner, then retrain the winner.

    python autoq.py --algo random                       # search from scratch (quick profile)
    python autoq.py --algo bayesian --float-model F     # search starting from float32 weights F
    python autoq.py --train-float --float-model F       # train the float32 reference F

Defaults come from the profile (solvers/config.py: PROFILES); every option overrides its value.
User errors print one line `error: ...` and exit 2, before anything in results/<RUN> is touched.
"""
import argparse
import errno
import os
import sys

from solvers.config import ArgumentParser

OUTPUT_ERRORS = (errno.EACCES, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EEXIST)


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value
    return parse


_positive_int, _count = _int_at_least(1), _int_at_least(0)


def parse_args(argv=None):
    # solvers.config loads no TensorFlow: a mistyped option is answered at once.
    p = ArgumentParser(prog="autoq.py", description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=("random", "bayesian", "hyperband", "evolution", "gradient"),
                   default="random", help="a Keras Tuner search, or gradient: the widths learned "
                   "by gradient descent to the budget (solvers/gradient/)")
    p.add_argument("--gradient-epochs", type=_positive_int, help="--algo gradient: epochs of "
                   "width learning before the retrain (default: the profile's retrain epochs)")
    p.add_argument("--profile", choices=("quick", "paper"), default="quick")
    p.add_argument("--trials", type=_positive_int, help="search trials (not for hyperband)")
    p.add_argument("--epochs", type=_positive_int, help="epochs per trial (hyperband: at most)")
    p.add_argument("--retrain-epochs", type=_count, help="extra epochs for the winner (0: none)")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--patch-size", type=_positive_int, help="LR training patch side in pixels")
    p.add_argument("--steps-per-epoch", type=_positive_int)
    p.add_argument("--patience", type=_count, help="stop a trial after this many epochs "
                   "without a better val_score (0: never)")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--xla", action="store_true", help="compile train steps with XLA")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=3)
    p.add_argument("--data", default=None, help="folder of HR PNG/JPEG images, or div2k "
                   "(default: the photos scikit-image ships)")
    p.add_argument("--lr-data", default=None, help="folder of LR images matching --data by name")
    p.add_argument("--div2k-root", default=None, help="DIV2K's folder, for --data div2k")
    p.add_argument("--train-images", type=_positive_int, help="use the first n training images")
    p.add_argument("--val-images", type=_positive_int, help="use the first n validation images")
    p.add_argument("--test-images", type=_positive_int,
                   help="use the first n test (held-out) images")
    p.add_argument("--config", default="quantization_config.yaml", help="search space YAML")
    p.add_argument("--goal", choices=("bits", "bops", "energy"),
                   help="the cost the search weighs (default: the config's goal: type)")
    p.add_argument("--budget", help="the best validation PSNR at cost <= this: a cost in the "
                   "goal's unit, uniformN (every layer at N bits), P%% of the reference, or none "
                   "(default: the config's goal: budget; without one, the blended score)")
    p.add_argument("--band", type=float, help="with a budget, proposals lie between band x "
                   "budget and the budget (default: the config's, 0.9)")
    p.add_argument("--finalists", type=_positive_int, default=3, help="the best trials retrained "
                   "for --retrain-epochs each; the best of them on validation is the answer")
    p.add_argument("--no-hand-rules", action="store_true", help="leave the hand rules out of the "
                   "starting points (make study: the automation on its own)")
    p.add_argument("--no-starting-points", action="store_true", help="start the search at random, "
                   "not from the uniform, hand-rule and sensitivity configurations")
    p.add_argument("--sensitivity", default=None, help="make sensitivity's sensitivity.csv for "
                   "the derived starting points (default: results/sensitivity/ when it exists; "
                   "none: no table); a table measured on other data, scale, quantizers or float "
                   "model is refused")
    p.add_argument("--allow-sensitivity-mismatch", action="store_true", help="use the table "
                   "--sensitivity names even where it does not fit this run (a warning line each)")
    p.add_argument("--float-model", default=None, help="float32 base7 .keras to start from")
    p.add_argument("--train-float", action="store_true",
                   help="train the float32 reference and save it to --float-model")
    p.add_argument("--baselines", action="store_true",
                   help="train the uniform baselines (every width, float32) instead of searching")
    p.add_argument("--baseline-epochs", type=_positive_int,
                   help="epochs per baseline (default: one search trial's, --epochs)")
    p.add_argument("--run", default=None, help="run name (default: the algorithm, "
                   "+ _pretrained with --float-model)")
    p.add_argument("--workers", type=_positive_int,
                   help="run the search on N worker processes on this machine (Keras Tuner's "
                   "distributed mode); the chief retrains the winner")
    p.add_argument("--role", choices=("chief", "worker"),
                   help="one process of a distributed search (with --oracle)")
    p.add_argument("--oracle", help="host:port of the chief's oracle")
    p.add_argument("--worker-id", type=_count, default=0, help="this worker's number (--role worker)")
    p.add_argument("--fresh", action="store_true",
                   help="start the run over, moving its old results and logs aside")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--tb-dir", default="tb_logs")
    args = p.parse_args(argv)
    if args.train_float and not args.float_model:
        p.error("--train-float needs --float-model PATH to save to")
    if args.role and not args.oracle:
        p.error(f"--role {args.role} needs --oracle host:port")
    if args.oracle and (":" not in args.oracle or not args.oracle.rsplit(":", 1)[1].isdigit()):
        p.error(f"argument --oracle: {args.oracle!r} is not host:port")
    if args.allow_sensitivity_mismatch and args.sensitivity in (None, "none"):
        p.error("--allow-sensitivity-mismatch needs --sensitivity PATH: name the table to use")
    if args.workers and (args.role or args.train_float or args.baselines):
        p.error("--workers runs a search: not with --role, --train-float or --baselines")
    if args.algo == "gradient" and (args.workers or args.role):
        p.error("--algo gradient is one training run: not with --workers or --role")
    if args.budget is not None or args.band is not None:
        from solvers.config import ConfigError, with_goal_options
        from solvers.config import SearchSpace as _Space
        try:  # the budget's form and the band, checked on an empty space before any file is read
            with_goal_options(_Space({}, {}, {}), budget=args.budget, band=args.band)
        except ConfigError as e:
            p.error(str(e))
    if not args.learning_rate > 0:
        p.error(f"argument --learning-rate: {args.learning_rate} must be > 0")
    return args


def main(argv=None):
    args = parse_args(argv)  # before importing TensorFlow, so option errors come at once
    if args.workers:
        from solvers.run_folder import run_name
        from solvers.search import distributed
        argv = sys.argv[1:] if argv is None else list(argv)
        argv = _without(_without(argv, "--workers"), "--oracle")
        trials_csv = os.path.join(args.results_dir, run_name(args), "trials.csv")
        return distributed.launch(__file__, argv, args.workers, args.oracle, trials_csv)
    from solvers import run_lock
    from solvers.config import ConfigError, load_search_space, with_goal_options
    from solvers.networks.layout import layer_names
    from solvers.run_folder import run_name
    try:
        # The config first, with no TensorFlow loaded yet, so that a mistake in it is answered at
        # once; likewise a search's lock, so that a second process on a running RUN is refused at
        # once (run.py takes the same lock again: a no-op then).
        if not args.train_float:
            with_goal_options(load_search_space(args.config, [n for names in layer_names()
                                                              for n in names]),
                              args.goal, args.budget, args.band)
        if not (args.train_float or args.baselines or args.role == "worker"):
            run_lock.hold(os.path.join(args.results_dir, run_name(args)))
        from solvers import run
        from solvers.search.tuners import SearchStopped
        try:
            if args.train_float:
                return run.train_float(args)
            if args.baselines:
                return run.uniform_baselines(args)
            if args.algo == "gradient":
                from solvers import run_gradient as job
                return job.gradient_and_retrain(args)
            return run.search_and_retrain(args)
        except SearchStopped as e:  # not the user's input: trials kept raising (a bug, no memory)
            print(f"error: {e}", file=sys.stderr)
            return 1
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # The output folders cannot be written (read-only, full, a file in the way): the user's
        # to fix, so one line. Files already written stay whole (they are written atomically).
        if e.errno not in OUTPUT_ERRORS:
            raise
        print(f"error: cannot write {e.filename or 'the outputs'}: {e.strerror} (--results-dir, "
              "--tb-dir)", file=sys.stderr)
        return 2


def _without(argv, option):
    """argv minus `option` and its value (either `--option v` or `--option=v`)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
