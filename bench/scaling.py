"""Training throughput under each distribution strategy on this machine, in one run.

Three configurations train the same model on the same data at the same global batch, each in
fresh processes, through the trainer's own strategy, data and model code:

    default      one process, the default strategy (one replica)
    mirrored     one process, MirroredStrategy over two logical CPU devices (two replicas)
    multiworker  two processes on 127.0.0.1, MultiWorkerMirroredStrategy (one replica each)

For each it prints images/s in steady state (the first epoch, with tracing, is left out), the
ratio to the default strategy, and the time of the collective alone: an all-reduce of as many
floats as the model has parameters (what every training step all-reduces: the gradients),
timed in a loop of its own. That is the per-step price of keeping the replicas in sync.

    nice -n 10 .venv/bin/python bench/scaling.py --rounds 2
    nice -n 10 .venv/bin/python bench/scaling.py --model dense --batch-size 256 --steps 30

On one CPU the replicas share the same cores, so two replicas cannot be faster than one: the
ratios measure the overhead of distribution, not a speed-up (docs/distribution.md explains
what to expect on GPUs and TPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONFIGS = ("default", "mirrored", "multiworker")
LABELS = {
    "default": "default strategy, 1 process",
    "mirrored": "Mirrored, 2 logical CPUs",
    "multiworker": "MultiWorkerMirrored, 2 processes",
}
ALL_REDUCE_REPEATS = 50


# ---------------------------------------------------------------------------- one process


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Train args.epochs epochs of args.steps steps; time epochs and a gradient-sized all-reduce.

    Runs inside a fresh process (devices and the cluster are fixed at TensorFlow's start).
    """
    if args.split_cpu > 1:
        from trainer.strategy import split_cpu

        split_cpu(args.split_cpu)
    from trainer.config import build_config
    from trainer.data import load_data
    from trainer.datasets import DATASETS
    from trainer.flags import parse_flags
    from trainer.keras_api import keras, tf
    from trainer.models import ModelOptions, build_model
    from trainer.optimizers import make_loss
    from trainer.strategy import make_strategy, settle_for_strategy
    from trainer.train import make_optimizer

    flags = ["--data-dir", args.data_dir, "--model", args.model, "--cpu"]
    flags += ["--batch-size", str(args.batch_size), "--distribution", args.distribution]
    cfg = build_config(parse_flags(flags), os.environ)
    strategy = make_strategy(cfg)
    cfg = settle_for_strategy(cfg, strategy)
    spec = DATASETS[cfg.dataset]
    data = load_data(cfg, spec)
    train_ds = strategy.distribute_datasets_from_function(data.train_fn)
    with strategy.scope():
        model = build_model(cfg.model, spec, cfg.image_size, ModelOptions(dropout=cfg.dropout))
        model.compile(optimizer=make_optimizer(cfg), loss=make_loss(0.0), metrics=["accuracy"])

    times: list[float] = []
    clock = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: times.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: times.append(time.perf_counter()),
    )
    model.fit(
        train_ds, epochs=args.epochs, steps_per_epoch=args.steps, callbacks=[clock], verbose=0
    )
    epoch_s = [end - begin for begin, end in zip(times[::2], times[1::2], strict=True)][1:]
    return {
        "replicas": strategy.num_replicas_in_sync,
        "parameters": model.count_params(),
        "epoch_s": epoch_s,
        "all_reduce_ms": all_reduce_ms(strategy, model.count_params(), tf),
    }


def all_reduce_ms(strategy: Any, size: int, tf: Any) -> float:
    """Milliseconds of one all-reduce of `size` floats across the replicas (0 with one)."""
    if strategy.num_replicas_in_sync == 1:
        return 0.0
    with strategy.scope():
        values = tf.Variable(tf.ones([size]))

    @tf.function
    def reduce_many() -> Any:
        def step() -> Any:
            total = tf.zeros([size])
            for _ in range(ALL_REDUCE_REPEATS):
                ctx = tf.distribute.get_replica_context()
                total += ctx.all_reduce(tf.distribute.ReduceOp.SUM, values + total * 0.0)
            return total

        return strategy.run(step)

    reduce_many()  # trace and warm up
    started = time.perf_counter()
    reduce_many()
    strategy.experimental_local_results(reduce_many())  # two calls: a steadier figure
    return (time.perf_counter() - started) * 1000 / (2 * ALL_REDUCE_REPEATS)


# ---------------------------------------------------------------------------- the comparison


def free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_config(name: str, args: argparse.Namespace, data_dir: str, work: Path) -> dict[str, Any]:
    """Run one configuration in fresh processes; the chief's (task 0's) measurement."""
    base = [sys.executable, __file__, "--measure", "--data-dir", data_dir]
    base += ["--model", args.model, "--batch-size", str(args.batch_size)]
    base += ["--steps", str(args.steps), "--epochs", str(args.epochs)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if name == "multiworker":
        ports = free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        tasks = [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(2)]
        envs = [{**env, "TF_CONFIG": json.dumps(t)} for t in tasks]
        extra = ["--distribution", "multiworker"]
    else:
        envs = [env]
        extra = ["--distribution", "mirrored", "--split-cpu", "2"] if name == "mirrored" else []
        extra = extra or ["--distribution", "cpu"]
    outs = [work / f"{name}-{i}.json" for i in range(len(envs))]
    procs = [
        subprocess.Popen(
            [*base, *extra, "--out", str(out)],
            env=e,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=open(work / f"{name}-{i}.log", "w"),  # noqa: SIM115 (closed with the process)
        )
        for i, (e, out) in enumerate(zip(envs, outs, strict=True))
    ]
    try:
        statuses = [p.wait(timeout=args.timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(statuses):
        log = (work / f"{name}-0.log").read_text()[-3000:]
        raise SystemExit(f"{name}: exit statuses {statuses}\n{log}")
    return json.loads(outs[0].read_text())


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the shortest median epoch: others' load on a shared machine only slows."""
    return min(runs, key=lambda r: statistics.median(r["epoch_s"]))


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    """The table: per configuration, replicas, step time, images/s, ratio and overheads."""
    rows = [
        f"{'configuration':34} {'replicas':>8} {'step ms':>8} {'images/s':>9} "
        f"{'vs default':>10} {'+ms/step':>9} {'all-reduce ms':>13}"
    ]
    base_step = None
    for name, r in results.items():
        step_s = statistics.median(r["epoch_s"]) / args.steps
        base_step = base_step or step_s
        rows.append(
            f"{LABELS[name]:34} {r['replicas']:>8} {step_s * 1000:>8.1f} "
            f"{args.batch_size / step_s:>9.0f} {base_step / step_s:>9.2f}x "
            f"{(step_s - base_step) * 1000:>+9.1f} {r['all_reduce_ms']:>13.2f}"
        )
    params = next(iter(results.values()))["parameters"]
    rows += [
        "",
        f"model {args.model}: {params:,} parameters, so {params * 4 / 1e6:.2f} MB of gradients "
        f"all-reduced per step; global batch {args.batch_size};",
        f"median of {args.epochs - 1} epoch(s) of {args.steps} steps after a warm-up epoch, "
        f"fastest of {args.rounds} round(s); {os.cpu_count()} CPU cores.",
        "+ms/step: step time over the default strategy's (collectives, replicas sharing cores);",
        "all-reduce ms: the gradient all-reduce alone, the collectives' share of that overhead.",
    ]
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="conv", help="MNIST model of the trainer (conv: 0.3M)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch, all replicas")
    p.add_argument("--steps", type=int, default=30, help="training steps per timed epoch")
    p.add_argument("--epochs", type=int, default=4, help="epochs per run; the first is warm-up")
    p.add_argument("--configs", default=",".join(CONFIGS), help="which configurations to run")
    p.add_argument(
        "--rounds", type=int, default=1, help="run all configurations this often; keep the fastest"
    )
    p.add_argument("--json", help="also write the measurements to this file")
    p.add_argument("--timeout", type=int, default=600, help="seconds per configuration")
    # Internal: one measuring process.
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--distribution", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--split-cpu", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    if args.measure:
        Path(args.out).write_text(json.dumps(measure(args)))
        return 0
    from trainer.synthetic import write_mnist_idx

    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        work = Path(tmp)
        data_dir = str(work / "mnist")
        os.makedirs(data_dir)
        write_mnist_idx(data_dir, 2048, 256, seed=3)
        rounds: dict[str, list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            for name in args.configs.split(","):
                print(f"round {round_ + 1}: {LABELS[name]} ...", flush=True)
                rounds.setdefault(name, []).append(run_config(name, args, data_dir, work))
        results = {name: fastest(runs) for name, runs in rounds.items()}
    print()
    print(report(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
