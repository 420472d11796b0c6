"""Entry point of a training job: `python -m trainer.task --help`.

Flags become a config, the config runs one training (trainer/train.py). Bad input ends the
process with a one-line error naming the culprit: status 2 for flags, paths and missing
files, status 1 for data or training that fails on the way.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from trainer.config import ConfigError, build_config
from trainer.flags import parse_flags

PROG = "trainer.task"


def _fail(status: int, message: str) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"{PROG}: error: {first}", file=sys.stderr)
    return status


def smoke_check(result: object) -> str:
    """Reload the export and predict a few evaluation images with it."""
    import numpy as np

    from trainer.export import load_serving
    from trainer.keras_api import tf

    serve = load_serving(result.model_dir)
    images, labels = next(
        iter(result.data.eval_fn(tf.distribute.InputContext()).unbatch().batch(16))
    )
    if images.shape[-1] == 1:
        out = serve(pixels=tf.cast(tf.squeeze(images, -1), tf.float32))
    else:
        jpegs = tf.map_fn(
            lambda im: tf.io.encode_jpeg(tf.cast(im, tf.uint8), quality=95),
            images,
            fn_output_signature=tf.string,
        )
        out = serve(image_bytes=jpegs)
    correct = np.mean(out["class_ids"].numpy() == np.argmax(labels.numpy(), -1))
    names = [n.decode() for n in out["class_names"].numpy()[:8]]
    return f"reloaded {result.model_dir}: predicted {names} ... ({correct:.0%} of 16 right)"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_flags(argv)
    try:
        cfg = build_config(args, os.environ)
    except ConfigError as err:
        return _fail(2, str(err))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from trainer.callbacks import TrainingError
    from trainer.cluster import worker_outputs
    from trainer.files import MissingFilesError
    from trainer.keras_api import tf
    from trainer.preemption import RESTART_STATUS, PreemptedError
    from trainer.records import DataError
    from trainer.strategy import StrategyError
    from trainer.summary import log_start
    from trainer.train import train_and_evaluate

    log_start(cfg)

    try:
        with worker_outputs(cfg) as worker_cfg:  # non-chief workers write to scratch
            result = train_and_evaluate(worker_cfg)
    except (MissingFilesError, StrategyError) as err:
        return _fail(2, str(err))
    except PreemptedError as err:
        return _fail(RESTART_STATUS, str(err))
    except (DataError, TrainingError) as err:
        return _fail(1, str(err))
    except tf.errors.OpError as err:
        return _fail(1, f"{type(err).__name__}: {err.message}")
    print(f"model:       {result.model_dir}")
    print(f"checkpoints: {cfg.checkpoint_dir}")
    print(f"tensorboard: {cfg.tensorboard_dir}")
    if cfg.smoke:
        print(f"smoke data:  {cfg.smoke_data_dir}")
        print(smoke_check(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
