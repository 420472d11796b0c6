"""Training throughput per model on this machine, measured side by side in one run.

For every model: training images/s fed by our input pipeline (as a run builds it: the data
read and decoded once into memory, a new permutation every epoch, batches, augmentation)
against the same compiled model fed from one batch held in memory (an input that costs
nothing), then the effect of --jit-compile and of --steps-per-execution on our pipeline, each
as a ratio to the plain run, and the CPU cost per image of the input pipeline alone next to
the model's. The pipeline also runs with the recipe's augmentation switched the other way,
so that every model shows both: aug/mem (the pipeline with --augment) and unaug/mem (what
reading and batching cost alone); augmentation runs on the same CPU cores as the model
here. Variants take turns within every repeat, each repeat starting one variant later, and
every variant's fit call sits between two fed from memory: its ratio to memory in a repeat
is its rate over the mean of those two, so that a slow spell or a drift of the shared
machine moves both sides of the ratio. Each rate is the median over repeats of the
steady-state rate (the first steps of every fit call, where tracing and pipeline start-up
happen, are not timed), and each ratio the median over repeats of the ratio within a
repeat. Fast models run more steps, so that every timed stretch lasts --min-seconds.
--variants picks what runs against memory (the pipeline always does), to spend a run's time
on more repeats of fewer variants. Last, the time from process start to the end of the
first training step of a real `trainer.task` process, per model.

    nice -n 10 .venv/bin/python bench/train_throughput.py
    nice -n 10 .venv/bin/python bench/train_throughput.py --models bn_conv squeezenet --steps 30
    nice -n 10 .venv/bin/python bench/train_throughput.py --models squeezenet --variants pipeline
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from trainer.datasets import DATASETS  # noqa: E402  (imports no TensorFlow)

MNIST_MODELS = DATASETS["mnist"].models
# `transfer` is mobilenet_v2 with another backbone: the same model unless one is named.
FLOWERS_MODELS = tuple(m for m in DATASETS["flowers"].models if m != "transfer")
VARIANTS = ("pipeline", "toggled", "memory", "jit", "spe")
AGAINST_MEMORY = tuple(v for v in VARIANTS if v != "memory")  # each runs between memory runs


# ---------------------------------------------------------------------------- data


def write_data(folder: str, flowers_size: int) -> dict[str, list[str]]:
    """Generated MNIST IDX files and flowers shards; flags that point a run at them."""
    from trainer.synthetic import write_flower_shards, write_mnist_idx

    mnist, flowers = os.path.join(folder, "mnist"), os.path.join(folder, "flowers")
    os.makedirs(mnist)
    os.makedirs(flowers)
    write_mnist_idx(mnist, 3000, 300, seed=0)
    write_flower_shards(flowers, 600, 6, size=flowers_size, seed=0)
    return {
        "mnist": ["--dataset", "mnist", "--data-dir", mnist],
        "flowers": [
            "--dataset",
            "flowers",
            "--data-dir",
            flowers,
            "--image-size",
            str(flowers_size),
        ],
    }


def run_flags(data_flags: list[str], model: str, out: str) -> list[str]:
    return (
        data_flags
        + ["--model", model, "--pretrained-weights", "none", "--cpu"]
        + [
            "--job-dir",
            out,
        ]
    )


# ---------------------------------------------------------------------------- throughput


def steady_rate_callback(skip: int, batch_size: int) -> Any:
    """A callback that times the steps after the first `skip`, in wall and CPU seconds."""
    from trainer.keras_api import keras

    marks: dict[str, float] = {}

    class SteadyRate(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            # With steps_per_execution N, batch jumps by N: it is the last step just run.
            now, cpu = time.perf_counter(), time.process_time()
            if batch + 1 >= skip and "start" not in marks:
                marks.update(start=now, cpu_start=cpu, first=batch + 1)
            marks.update(end=now, cpu_end=cpu, last=batch + 1)

        def rates(self) -> tuple[float, float]:
            """Images per wall second, and images per CPU second of this process."""
            images = (marks["last"] - marks["first"]) * batch_size
            wall = marks["end"] - marks["start"]
            return images / wall, images / (marks["cpu_end"] - marks["cpu_start"])

    return SteadyRate()


def input_cost(dataset: Any, skip: int, steps: int, batch_size: int) -> float:
    """CPU microseconds per image of the input pipeline alone, without a model: batches are
    taken inside one graph loop, as fit takes them, so no Python runs per batch."""
    from trainer.keras_api import tf

    @tf.function
    def take(iterator: Any, count: Any) -> None:
        for _ in tf.range(count):
            iterator.get_next()

    iterator = iter(dataset)
    take(iterator, tf.constant(skip))
    started = time.process_time()
    take(iterator, tf.constant(steps))
    return (time.process_time() - started) / (steps * batch_size) * 1e6


def compiled_model(cfg: Any, jit: bool, steps_per_execution: int) -> Any:
    """The model of a run, compiled as trainer/train.py compiles it (float32 on CPU)."""
    from trainer import optimizers
    from trainer.datasets import DATASETS
    from trainer.models import ModelOptions, build_model

    options = ModelOptions.from_config(cfg)
    model = build_model(cfg.model, DATASETS[cfg.dataset], cfg.image_size, options)
    optimizer = optimizers.make_optimizer(cfg.optimizer, cfg.learning_rate, cfg.momentum, "float32")
    model.compile(
        optimizer=optimizer,
        loss=optimizers.make_loss(cfg.label_smoothing),
        metrics=["accuracy"],
        jit_compile=jit,
        steps_per_execution=steps_per_execution,
    )
    return model


def timed_steps(model: Any, data: Any, skip: int, batch_size: int, args: Any) -> int:
    """Timed steps per fit call: --steps, or more where a model is so fast that they would
    take less than --min-seconds (a tenth of a second is noise on a shared machine)."""
    timer = steady_rate_callback(skip, batch_size)
    model.fit(data, epochs=1, steps_per_epoch=skip + args.steps, callbacks=[timer], verbose=0)
    per_second = timer.rates()[0] / batch_size
    steps = max(args.steps, math.ceil(args.min_seconds * per_second))
    return -(-steps // args.steps_per_execution) * args.steps_per_execution


def measure_model(flags: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Median steady-state images/s of each variant and their ratios (NaN: not run),
    variants taking turns per repeat, each between two runs fed from memory."""
    from trainer.config import build_config
    from trainer.data import load_data
    from trainer.datasets import DATASETS
    from trainer.flags import parse_flags
    from trainer.keras_api import keras, tf

    keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    cfg = build_config(parse_flags(flags), {})
    data = load_data(cfg, DATASETS[cfg.dataset])
    pipeline = data.train_fn(tf.distribute.InputContext())
    # The same input with the recipe's augmentation switched the other way.
    toggled_cfg = dataclasses.replace(cfg, augment=not cfg.augment)
    toggled = load_data(toggled_cfg, DATASETS[cfg.dataset]).train_fn(tf.distribute.InputContext())
    in_memory = tf.data.Dataset.from_tensors(next(iter(pipeline))).repeat()
    plain = compiled_model(cfg, jit=False, steps_per_execution=1)
    runs = {
        "pipeline": (plain, pipeline),
        "toggled": (plain, toggled),
        "memory": (plain, in_memory),
        "jit": (compiled_model(cfg, jit=True, steps_per_execution=1), pipeline),
        "spe": (compiled_model(cfg, False, args.steps_per_execution), pipeline),
    }
    skip = args.skip_steps
    if skip % args.steps_per_execution:
        skip += args.steps_per_execution - skip % args.steps_per_execution
    steps = timed_steps(plain, in_memory, skip, cfg.batch_size, args)

    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}

    def fit(name: str) -> tuple[float, float]:
        """Images per wall second and per CPU second of one timed fit call, also noted."""
        model, dataset = runs[name]
        timer = steady_rate_callback(skip, cfg.batch_size)
        model.fit(dataset, epochs=1, steps_per_epoch=skip + steps, callbacks=[timer], verbose=0)
        per_wall, per_cpu = timer.rates()
        wall[name].append(per_wall)
        cpu[name].append(per_cpu)
        return per_wall, per_cpu

    measured = ["pipeline", *(v for v in args.variants if v != "pipeline")]
    # Every variant runs between two runs fed from memory and is measured against their
    # mean: a slow spell of the machine or a drift then moves both sides of its ratio.
    against_memory: dict[str, list[tuple[float, float]]] = {name: [] for name in measured}
    before = fit("memory")
    for turn in range(args.repeats):
        # Each repeat starts one variant later, so that no variant always runs first after
        # another model (cold caches) or last before one.
        shift = turn % len(measured)
        for name in measured[shift:] + measured[:shift]:
            rate = fit(name)
            after = fit("memory")
            against_memory[name].append(
                (2 * rate[0] / (before[0] + after[0]), 2 * rate[1] / (before[1] + after[1]))
            )
            before = after
    augmented, unaugmented = ("pipeline", "toggled") if cfg.augment else ("toggled", "pipeline")
    input_us = {
        name: statistics.median(
            input_cost(runs[name][1], skip, 4 * steps, cfg.batch_size) for _ in range(args.repeats)
        )
        if name in measured
        else math.nan
        for name in (augmented, unaugmented)
    }
    rates = {name: statistics.median(v) if v else math.nan for name, v in wall.items()}
    cpu_rates = {name: statistics.median(v) if v else math.nan for name, v in cpu.items()}

    def ratio(name: str, base: str, clock: int) -> float:
        """Median over repeats of name/base, each measured against the memory runs on
        either side of it in the same repeat (clock 0: wall, 1: CPU); NaN if not run."""
        if name not in against_memory or (base != "memory" and base not in against_memory):
            return math.nan
        if base == "memory":
            return statistics.median(r[clock] for r in against_memory[name])
        pairs = zip(against_memory[name], against_memory[base], strict=True)
        return statistics.median(a[clock] / b[clock] for a, b in pairs)

    return {
        "batch": cfg.batch_size,
        "image_size": cfg.image_size,
        "timed_steps": steps,
        "rates": rates,
        "cpu_rates": cpu_rates,
        # Next to 1e6 / cpu_rates["memory"], the model's own CPU microseconds per image.
        "input_cpu_us_per_image": input_us["pipeline"],
        "augmented_input_cpu_us_per_image": input_us[augmented],
        "unaugmented_input_cpu_us_per_image": input_us[unaugmented],
        "model_cpu_us_per_image": 1e6 / cpu_rates["memory"],
        # Wall-clock ratios are what a job sees; on a machine shared with other work they
        # also carry its noise. Images per CPU second of this process barely feel it.
        "pipeline_vs_memory": ratio("pipeline", "memory", 0),
        "pipeline_vs_memory_cpu": ratio("pipeline", "memory", 1),
        # What the median is taken of: how much single repeats swing on this machine.
        "pipeline_vs_memory_repeats": [round(r[0], 3) for r in against_memory["pipeline"]],
        "augment": cfg.augment,
        "augmented_vs_memory": ratio(augmented, "memory", 0),
        "augmented_vs_memory_cpu": ratio(augmented, "memory", 1),
        "unaugmented_vs_memory": ratio(unaugmented, "memory", 0),
        "unaugmented_vs_memory_cpu": ratio(unaugmented, "memory", 1),
        "jit_vs_plain": ratio("jit", "pipeline", 0),
        "jit_vs_plain_cpu": ratio("jit", "pipeline", 1),
        "spe_vs_plain": ratio("spe", "pipeline", 0),
        "spe_vs_plain_cpu": ratio("spe", "pipeline", 1),
    }


# ---------------------------------------------------------------------------- first step

CHILD = "--first-step-child"


def first_step_child(marker: str, argv: list[str]) -> None:
    """Run trainer.task; when the first training step ends, note the time and stop."""
    from trainer.keras_api import keras

    original_fit = keras.Model.fit

    def on_first_batch(batch: int, logs: Any) -> None:
        with open(marker, "w") as f:
            f.write(repr(time.time()))
        os._exit(0)  # the rest of the run is not what this measures

    def fit(self: Any, *args: Any, callbacks: Any = None, **kwargs: Any) -> Any:
        marker_callback = keras.callbacks.LambdaCallback(on_train_batch_end=on_first_batch)
        return original_fit(self, *args, callbacks=[*(callbacks or []), marker_callback], **kwargs)

    keras.Model.fit = fit
    from trainer.task import main

    sys.exit(main(argv))


def time_to_first_step(flags: list[str], folder: str) -> float:
    """Seconds from starting a trainer.task process to the end of its first training step."""
    marker = os.path.join(folder, "first-step")
    if os.path.exists(marker):
        os.remove(marker)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, os.path.abspath(__file__), CHILD, marker, *flags]
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if not os.path.exists(marker):
        raise RuntimeError(f"no training step in {' '.join(flags)}:\n{done.stderr[-2000:]}")
    with open(marker) as f:
        return float(f.read()) - started


# ---------------------------------------------------------------------------- report


def print_table(results: dict[str, dict[str, Any]], spe: int) -> None:
    """Wall-clock figures, then the same ratios in images per CPU second, then the CPU time
    per image of the input alone (with and without augmentation) against the model's, and
    the recipe's input as a share of the model: the input's part of the work, which a shared
    machine's noise barely moves (the ratios swing by up to 0.17 here). pipe/mem is the
    recipe's pipeline, which is aug/mem or unaug/mem as the recipe augments or not."""
    print(
        f"\n{'model':<15}{'batch':>6}{'size':>6}{'aug':>5}{'pipeline img/s':>16}"
        f"{'memory img/s':>14}{'pipe/mem':>10}{'aug/mem':>9}{'unaug/mem':>11}{'jit/plain':>11}"
        f"{f'spe{spe}/1':>10}{'1st step s':>12}{'| cpu: pipe/mem':>16}{'aug/mem':>9}"
        f"{'unaug/mem':>11}{'jit/plain':>11}{f'spe{spe}/1':>10}{'input us/img aug':>18}"
        f"{'unaug':>7}{'model us/img':>14}{'input/model':>13}"
    )
    for model, r in results.items():
        rates = r["rates"]
        print(
            f"{model:<15}{r['batch']:>6}{r['image_size']:>6}{'yes' if r['augment'] else 'no':>5}"
            f"{rates['pipeline']:>16.0f}{rates['memory']:>14.0f}{r['pipeline_vs_memory']:>10.3f}"
            f"{r['augmented_vs_memory']:>9.3f}{r['unaugmented_vs_memory']:>11.3f}"
            f"{r['jit_vs_plain']:>11.2f}{r['spe_vs_plain']:>10.2f}"
            f"{r.get('first_step_s', float('nan')):>12.1f}{r['pipeline_vs_memory_cpu']:>16.3f}"
            f"{r['augmented_vs_memory_cpu']:>9.3f}{r['unaugmented_vs_memory_cpu']:>11.3f}"
            f"{r['jit_vs_plain_cpu']:>11.2f}{r['spe_vs_plain_cpu']:>10.2f}"
            f"{r['augmented_input_cpu_us_per_image']:>18.1f}"
            f"{r['unaugmented_input_cpu_us_per_image']:>7.1f}"
            f"{r['model_cpu_us_per_image']:>14.1f}"
            f"{r['input_cpu_us_per_image'] / r['model_cpu_us_per_image']:>13.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=[*MNIST_MODELS, *FLOWERS_MODELS])
    parser.add_argument("--flowers-size", type=int, default=192, help="flowers image size")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per fit call")
    parser.add_argument("--skip-steps", type=int, default=5, help="untimed steps per fit call")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="least time timed")
    parser.add_argument("--repeats", type=int, default=5, help="turns of every variant")
    parser.add_argument("--steps-per-execution", type=int, default=8)
    parser.add_argument(
        "--variants",
        nargs="*",
        choices=AGAINST_MEMORY,
        default=list(AGAINST_MEMORY),
        help="what runs against memory (all; pipeline always does)",
    )
    parser.add_argument("--no-first-step", action="store_true", help="skip process start-up")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

    folder = tempfile.mkdtemp(prefix="throughput-")
    data_flags = write_data(folder, args.flowers_size)
    print(f"CPU cores: {os.cpu_count()}; data in {folder}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for model in args.models:
        dataset = "mnist" if model in MNIST_MODELS else "flowers"
        flags = run_flags(data_flags[dataset], model, os.path.join(folder, model))
        results[model] = measure_model(flags, args)
        print(model, json.dumps(results[model]), flush=True)
    if not args.no_first_step:
        for model in args.models:
            dataset = "mnist" if model in MNIST_MODELS else "flowers"
            flags = run_flags(data_flags[dataset], model, os.path.join(folder, f"{model}-start"))
            results[model]["first_step_s"] = time_to_first_step(flags, folder)
            print(
                f"{model}: first training step {results[model]['first_step_s']:.1f}s after "
                "process start",
                flush=True,
            )
    print_table(results, args.steps_per_execution)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == CHILD:
        first_step_child(sys.argv[2], sys.argv[3:])
    else:
        main()
