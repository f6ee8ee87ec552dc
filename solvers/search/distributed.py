"""Several workers on one search through Keras Tuner's distributed mode (`WORKERS=N`).

Keras Tuner's own protocol: a chief process holds the oracle behind gRPC
(KERASTUNER_TUNER_ID=chief, KERASTUNER_ORACLE_IP/PORT) and workers (tuner0, tuner1, ...) ask it for
trials. `launch` starts the chief and N workers on this machine, each worker pinned to its share of
the CPU cores (CUDA_VISIBLE_DEVICES to one GPU each where there are several), prefixes their output,
restarts a worker that dies (the oracle hands it back the trial it held, which so runs again), and
returns when the chief, which retrains the winner and writes the report, has finished. A worker
that dies once more after MAX_RESTARTS restarts stops the whole search (the chief would wait for its
trial forever), and so does the chief dying.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

MAX_RESTARTS = 3  # per worker: a worker that keeps dying is a bug, not bad luck


def free_port():
    """A TCP port free on this machine now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tuner_env(role, oracle, worker_id=None):
    """Keras Tuner's environment for a chief or a worker talking to the oracle at host:port."""
    host, port = oracle.rsplit(":", 1)
    return {"KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": port,
            "KERASTUNER_TUNER_ID": "chief" if role == "chief" else f"tuner{worker_id}"}


def core_shares(workers, cores=None):
    """Cores for each worker: the machine's cores split into `workers` contiguous groups."""
    cores = sorted(cores if cores is not None else os.sched_getaffinity(0))
    return [cores[i * len(cores) // workers:(i + 1) * len(cores) // workers] or cores
            for i in range(workers)]


def _pump(stream, prefix):
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"[{prefix}] {line}")
        sys.stdout.flush()


def _start(argv, env_extra, prefix, cores=None, gpu=None):
    env = {**os.environ, **env_extra}
    if cores is not None:
        # One intra-op thread per core of the share, so workers do not fight over the same cores.
        env.update(TF_NUM_INTRAOP_THREADS=str(len(cores)), TF_NUM_INTEROP_THREADS="1")
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    proc = subprocess.Popen(
        [sys.executable, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1,
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
    proc.pump = threading.Thread(target=_pump, args=(proc.stdout, prefix), daemon=True)
    proc.pump.start()
    print(f"{prefix} started (pid {proc.pid})", flush=True)
    return proc


def _gpus():
    """Visible NVIDIA GPUs by index (none on a CPU-only machine)."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [i for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU")]


def launch(script, argv, workers, oracle=None, trials_csv=None):
    """Runs `script argv` as a chief and `workers` workers; returns the chief's exit status, or 1
    if a worker kept dying and the search was stopped (`trials_csv`: the run's, for that message)."""
    oracle = oracle or f"127.0.0.1:{free_port()}"
    print(f"distributed search: chief oracle at {oracle}, {workers} workers", flush=True)
    gpus = _gpus()
    shares = core_shares(workers)
    chief = _start([script, *argv, "--role", "chief", "--oracle", oracle],
                   tuner_env("chief", oracle), "chief")

    def start_worker(k):
        return _start([script, *argv, "--role", "worker", "--oracle", oracle, "--worker-id", str(k)],
                      tuner_env("worker", oracle, k), f"tuner{k}",
                      cores=None if gpus else shares[k], gpu=gpus[k % len(gpus)] if gpus else None)

    procs = {k: start_worker(k) for k in range(workers)}
    restarts = dict.fromkeys(procs, 0)
    stopped = False  # a worker used up its restarts: we end the search, the chief would not
    try:
        while not stopped and chief.poll() is None:
            for k, proc in procs.items():
                code = proc.poll()
                if code in (None, 0):
                    continue
                if restarts[k] == MAX_RESTARTS:
                    # The oracle keeps this worker's trial assigned to it, so the chief would wait
                    # for it forever: one line saying why, then everyone is taken down below.
                    csv = trials_csv if trials_csv and os.path.isfile(trials_csv) else None
                    print(f"error: tuner{k} died {restarts[k] + 1} times (exit code {code} the "
                          "last time); the search is stopped"
                          + (f"; the trials finished so far: {csv}" if csv else ""),
                          file=sys.stderr, flush=True)
                    stopped = True
                    break
                restarts[k] += 1
                print(f"tuner{k} died (exit {code}); restarting it, its trial runs again",
                      flush=True)
                procs[k] = start_worker(k)
            time.sleep(0.5)
    finally:
        # Unless the chief finished normally (its workers then end by themselves): stopped,
        # interrupted, or the chief died, whose workers can only fail. Everyone goes down now.
        if chief.returncode != 0:
            for proc in [chief, *procs.values()]:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
    for proc in [chief, *procs.values()]:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.pump.join(timeout=10)  # the last lines reach the terminal before we return
    return 1 if stopped else chief.returncode
