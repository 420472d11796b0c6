"""Command-line flags of `python -m trainer.task`.

Every tunable is a dash-style flag; Vertex job specs (args, HP tuning parameterIds) use exactly
these names. Parsing imports no TensorFlow, so `--help` and flag errors answer at once. A flag
left unset (None) takes the recipe default of its dataset and model (trainer/recipes.py).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import NoReturn

from trainer.datasets import DATASETS

DISTRIBUTIONS = ("auto", "tpu", "mirrored", "multiworker", "one_device", "cpu")
MIXED_PRECISION = ("auto", "none", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
LR_SCHEDULES = ("exponential", "warmup_exponential")


class FlagParser(argparse.ArgumentParser):
    """argparse with one-line errors: `trainer.task: error: ...` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_value(text: str) -> int:
    """An integer; also "64.0", the way Vertex tuning spells DISCRETE values (doubles)."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise
        return int(value)


def positive_int(text: str) -> int:
    """An argparse type: a positive integer (also "64.0", as Vertex tuning sends it)."""
    value = _int_value(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int_value(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _boolean(text: str) -> bool:
    """Booleans also take a value, so HP tuning can set them (`--fine-tune=true`)."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text}")


# argparse names a type in its messages by the function's __name__.
positive_int.__name__ = "positive integer"
_non_negative_int.__name__ = "integer"
_positive_float.__name__ = "positive number"
_non_negative_float.__name__ = "number"
_fraction.__name__ = "fraction"
_boolean.__name__ = "boolean"


def _add_switch(group: argparse._ArgumentGroup, name: str, help_text: str) -> None:
    group.add_argument(
        name, nargs="?", const=True, default=None, type=_boolean, metavar="BOOL", help=help_text
    )


def build_parser() -> FlagParser:
    """The parser for every flag of a training run."""
    p = FlagParser(
        prog="trainer.task",
        description="Train a Keras image classifier (MNIST or flowers) and export a SavedModel. "
        "Runs locally (--smoke --cpu) or as a Vertex AI custom / hyperparameter tuning job.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset", choices=sorted(DATASETS), default="mnist", help="what to train on"
    )
    data.add_argument(
        "--data-dir",
        help="folder (local or gs://) holding the dataset's files under their usual names "
        "(MNIST: the four IDX files or *.tfrec; flowers: *.tfrec); split into train/eval by file",
    )
    data.add_argument(
        "--train-files",
        help="comma-separated files or globs for training; needs no bucket listing when "
        "files are named explicitly",
    )
    data.add_argument("--eval-files", help="comma-separated files or globs for evaluation")
    data.add_argument(
        "--eval-split",
        type=_fraction,
        default=0.19,
        help="fraction of --data-dir files held out for evaluation (the codelab's 0.19)",
    )
    data.add_argument(
        "--image-size", type=positive_int, help="flowers: resize images to this square size (192)"
    )
    data.add_argument(
        "--cache",
        default="auto",
        help="decoded images: auto (in memory when they fit, a full reshuffle every epoch), "
        "memory, none (read the files every epoch), or a cache file path",
    )
    data.add_argument(
        "--shuffle-buffer",
        type=positive_int,
        help="records in the shuffle buffer when not held in memory (recipe)",
    )
    _add_switch(data, "--skip-bad-records", "skip corrupt records instead of failing (logged)")

    model = p.add_argument_group("model")
    model.add_argument("--model", help="model name; per dataset: see README (recipe default)")
    model.add_argument(
        "--backbone",
        default="MobileNetV2",
        help="keras.applications backbone for transfer learning models",
    )
    model.add_argument(
        "--pretrained-weights",
        default="imagenet",
        help="backbone weights: imagenet, none, or a weights file path",
    )
    _add_switch(model, "--fine-tune", "train the backbone too (default: frozen)")
    model.add_argument(
        "--fine-tune-at",
        type=_non_negative_int,
        default=0,
        help="with --fine-tune: freeze backbone layers below this index",
    )
    model.add_argument("--dropout", type=_fraction, help="dropout rate (recipe)")
    model.add_argument("--bn-momentum", type=_fraction, help="batch-norm momentum (recipe)")
    model.add_argument(
        "--label-smoothing", type=_fraction, default=0.0, help="label smoothing of the loss"
    )
    _add_switch(
        model, "--augment", "random flips/saturation (flowers), shifts and turns (MNIST) (recipe)"
    )

    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=positive_int, help="training epochs (recipe)")
    train.add_argument(
        "--steps-per-epoch",
        type=positive_int,
        help="training steps per epoch (default: one pass over the training files)",
    )
    train.add_argument(
        "--eval-steps",
        type=positive_int,
        help="evaluation steps (default: every evaluation record once)",
    )
    train.add_argument(
        "--batch-size", type=positive_int, help="global batch size, over all replicas (recipe)"
    )
    train.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer (recipe)")
    train.add_argument(
        "--momentum",
        type=_fraction,
        default=0.9,
        help="momentum of sgd and rmsprop; beta_1 (its momentum term) of adam",
    )
    train.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, help="learning-rate schedule (recipe)"
    )
    train.add_argument(
        "--learning-rate", type=_positive_float, help="learning rate of epoch 0 (recipe)"
    )
    train.add_argument(
        "--lr-decay", type=_positive_float, help="learning rate multiplier per epoch (recipe)"
    )
    train.add_argument(
        "--min-learning-rate", type=_non_negative_float, help="learning rate floor (recipe)"
    )
    train.add_argument(
        "--lr-warmup-epochs",
        type=_non_negative_int,
        help="warmup_exponential: epochs of linear ramp-up to --lr-max (recipe)",
    )
    train.add_argument(
        "--lr-max", type=_positive_float, help="warmup_exponential: peak learning rate (recipe)"
    )
    train.add_argument(
        "--mixed-precision",
        choices=MIXED_PRECISION,
        default="auto",
        help="auto: bf16 on TPU, fp16 on GPU, none on CPU",
    )
    _add_switch(train, "--jit-compile", "compile the train step with XLA")
    train.add_argument(
        "--steps-per-execution",
        type=positive_int,
        help="train steps per tf.function call (default: 1, or 32 on TPU)",
    )
    train.add_argument("--seed", type=int, default=42, help="seed for shuffles and weights")

    dist = p.add_argument_group("distribution")
    dist.add_argument(
        "--distribution",
        choices=DISTRIBUTIONS,
        default="auto",
        help="auto: TPU if found, multi-worker if the cluster has several workers, "
        "mirrored over local GPUs, else CPU",
    )
    dist.add_argument(
        "--tpu",
        help="TPU: local (attached, as on Vertex TPU VMs), or a TPU node's name or grpc:// "
        "address (default: $KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS on AI Platform TPU jobs, else local)",
    )
    _add_switch(dist, "--cpu", "force CPU and hide accelerators (local smoke runs)")
    _add_switch(dist, "--scale-lr-with-batch", "scale the learning rate by batch size / recipe's")
    dist.add_argument(
        "--backup-every-steps",
        type=positive_int,
        help="also back up for preemption every N steps (default: every epoch)",
    )

    out = p.add_argument_group("outputs")
    out.add_argument("--model-dir", help="SavedModel destination (default: $AIP_MODEL_DIR)")
    out.add_argument("--checkpoint-dir", help="preemption backups (default: $AIP_CHECKPOINT_DIR)")
    out.add_argument(
        "--tensorboard-dir", help="TensorBoard logs (default: $AIP_TENSORBOARD_LOG_DIR)"
    )
    out.add_argument(
        "--job-dir",
        help="AI Platform job dir; model/, checkpoints/ and logs/ go under it when the "
        "AIP_* variables are unset (fallback: ./output)",
    )
    out.add_argument(
        "--hypertune-metric",
        default="val_accuracy",
        help="metric reported to hyperparameter tuning; must equal the job's metricId",
    )
    _add_switch(
        out,
        "--smoke",
        "generate a small dataset, train briefly on CPU, export and reload (no data needed)",
    )
    return p


def parse_flags(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check flags; exits with status 2 and a one-line message on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    return args


def _check(parser: FlagParser, args: argparse.Namespace) -> None:
    spec = DATASETS[args.dataset]
    if args.model is not None and args.model not in spec.models:
        parser.error(
            f"unknown model {args.model!r} for dataset {args.dataset}; "
            f"choose from {', '.join(spec.models)}"
        )
    if args.data_dir and "://" not in args.data_dir and not os.path.isdir(args.data_dir):
        parser.error(f"--data-dir {args.data_dir} does not exist or is not a folder")
    if args.eval_files and not (args.train_files or args.data_dir or args.smoke):
        parser.error("--eval-files needs --train-files (or --data-dir)")
    if args.smoke and (args.data_dir or args.train_files):
        parser.error("--smoke makes its own data; drop --data-dir / --train-files")
    if not (args.smoke or args.data_dir or args.train_files):
        parser.error("no data: give --data-dir or --train-files, or --smoke for generated data")
