"""Default hyperparameters per dataset, refined per model, and the shrink for smoke runs.

A flag that is left unset takes its value from here; a flag that is set always wins.
The codelabs' own recipes stay reproducible by flags (docs/models.md lists them).
"""

from __future__ import annotations

from typing import Any

# The codelabs' recipes, each value with its reason.
DATASET_RECIPES: dict[str, dict[str, Any]] = {
    "mnist": {
        "epochs": 6,  # the codelab trains 10; with the changes below 6 reach more (bench/)
        "batch_size": 64,  # the codelab's batch
        "optimizer": "adam",
        "lr_schedule": "exponential",
        "learning_rate": 0.01,  # the codelab starts high and decays fast
        "lr_decay": 0.666,  # the codelab's per-epoch decay
        "min_learning_rate": 1e-4,  # floor, so late epochs still move
        "lr_warmup_epochs": 0,
        "lr_max": 0.01,
        "dropout": 0.3,
        # The codelab kept Keras' 0.99: with few steps per epoch the moving averages lag the
        # weights, and held-out accuracy swings and sinks (bench/mnist_recipe.py: 0.41-0.83
        # after 10 epochs on 1,297 real digits). 0.9 forgets the early epochs in ~20 steps.
        "bn_momentum": 0.9,
        "augment": True,  # small shifts and turns, as real handwriting varies
        "shuffle_buffer": 10000,  # when streamed: a sixth of MNIST, 8 MB
        "image_size": 28,
    },
    "flowers": {
        "epochs": 12,
        "batch_size": 32,  # fits a laptop; use 128+ on GPUs and TPUs
        "optimizer": "adam",
        "lr_schedule": "exponential",
        "learning_rate": 0.005,
        "lr_decay": 0.8,
        "min_learning_rate": 1e-5,
        "lr_warmup_epochs": 0,
        "lr_max": 0.005,
        "dropout": 0.2,
        "bn_momentum": 0.99,
        "augment": True,  # the codelab's random flips and saturation
        "shuffle_buffer": 2048,  # streamed: JPEG records of ~20 kB, shuffled before decoding
        "image_size": 192,
    },
}

# Per-model refinements over the dataset recipe.
MODEL_RECIPES: dict[str, dict[str, Any]] = {
    # The two dense models see pixels, not shapes: a shifted digit is a new input to them, not
    # the same strokes elsewhere. Within the recipe's epochs shifts and turns only slowed
    # dense down (bench/mnist_recipe.py, 1,297 real digits, 3 seeds: a median 0.74 held out
    # with them and 0.81 without, after 20 epochs; 0.74 and 0.76 after 6). On a CPU they
    # cost 10-14 microseconds per image beside steps of 17-18 (softmax) and 72-79 (dense) on
    # the same cores (bench/train_throughput.py). --augment to try.
    "softmax": {"augment": False},
    "dense": {"augment": False},
    # The codelab's squeezenets used momentum 0.9. With 0.99 the moving statistics trail the
    # weights for hundreds of steps: 400 synthetic flowers, 96 steps, held-out 0.20 with
    # 0.99 against 0.98 after 60 steps with 0.9.
    "squeezenet": {"bn_momentum": 0.9},
    "squeeze_fast": {"bn_momentum": 0.9},
    # Frozen ImageNet features: only the head learns, at Adam's usual rate (the codelab's).
    "mobilenet_v2": {"learning_rate": 0.001, "lr_max": 0.001, "lr_decay": 0.9, "epochs": 10},
    "transfer": {"learning_rate": 0.001, "lr_max": 0.001, "lr_decay": 0.9, "epochs": 10},
}

# Smoke runs: the same code paths, a few seconds of training.
SMOKE_RECIPE: dict[str, Any] = {
    "epochs": 4,
    "bn_momentum": 0.9,  # BN statistics settle in few steps
}
# Flowers smoke runs read 192x192 shards resized to 64: the resize path runs, in seconds.
# No augmentation: 30 steps leave nothing to overfit, and random saturation (colour is what
# tells synthetic flowers apart) made 1 of 4 two-epoch convnets predict a single class.
SMOKE_DATASET_RECIPES: dict[str, dict[str, Any]] = {"flowers": {"image_size": 64, "augment": False}}


def recipe_for(dataset: str, model: str, smoke: bool) -> dict[str, Any]:
    """The defaults for a dataset and model, shrunk for smoke runs."""
    recipe = dict(DATASET_RECIPES[dataset])
    recipe.update(MODEL_RECIPES.get(model, {}))
    if smoke:
        recipe.update(SMOKE_RECIPE)
        recipe.update(SMOKE_DATASET_RECIPES.get(dataset, {}))
    return recipe
