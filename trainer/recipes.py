"""Default hyperparameters per dataset, refined per model, and the shrink for smoke runs.

A flag that is left unset takes its value from here; a flag that is set always wins.
"""

from __future__ import annotations

from typing import Any

# The codelabs' recipes, each value with its reason.
DATASET_RECIPES: dict[str, dict[str, Any]] = {
    "mnist": {
        "epochs": 10,  # the codelab trains 10 epochs
        "batch_size": 64,  # the codelab's batch
        "optimizer": "adam",
        "lr_schedule": "exponential",
        "learning_rate": 0.01,  # the codelab starts high and decays fast
        "lr_decay": 0.666,  # the codelab's per-epoch decay
        "min_learning_rate": 1e-4,  # floor, so late epochs still move
        "lr_warmup_epochs": 0,
        "lr_max": 0.01,
        "dropout": 0.3,
        "bn_momentum": 0.99,  # Keras default
        "augment": False,
        "shuffle_buffer": 10000,  # a sixth of MNIST: shuffles well, costs 8 MB
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
        "augment": True,  # the codelab's random flips
        "shuffle_buffer": 2048,  # decoded 192x192 images are 110 kB each
        "image_size": 192,
    },
}

# Per-model refinements over the dataset recipe.
MODEL_RECIPES: dict[str, dict[str, Any]] = {}

# Smoke runs: the same code paths, a few seconds of training.
SMOKE_RECIPE: dict[str, Any] = {
    "epochs": 4,
    "bn_momentum": 0.9,  # BN statistics settle in few steps
}
# Flowers smoke runs read 192x192 shards resized to 64: the resize path runs, in seconds.
SMOKE_DATASET_RECIPES: dict[str, dict[str, Any]] = {"flowers": {"image_size": 64}}


def recipe_for(dataset: str, model: str, smoke: bool) -> dict[str, Any]:
    """The defaults for a dataset and model, shrunk for smoke runs."""
    recipe = dict(DATASET_RECIPES[dataset])
    recipe.update(MODEL_RECIPES.get(model, {}))
    if smoke:
        recipe.update(SMOKE_RECIPE)
        recipe.update(SMOKE_DATASET_RECIPES.get(dataset, {}))
    return recipe
