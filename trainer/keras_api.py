"""The one place that imports TensorFlow and Keras.

The package uses the Keras 2 API of the `tf-keras` package, not Keras 3: under Keras 3,
`model.fit` fails with MultiWorkerMirroredStrategy (keras-team/keras#20585) and refuses an
already-distributed dataset. `TF_USE_LEGACY_KERAS=1` makes `tf.keras` inside TensorFlow
itself (SavedModel, distribution) agree with `tf_keras`. Moving to Keras 3 later is a change
to this file.

Both names are lazy: importing them costs nothing, the first attribute access imports
TensorFlow. That keeps `--help` and flag errors instant and lets registries live in modules
that build models.

Before TensorFlow loads, `GCS_READ_CACHE_BLOCK_SIZE_MB` defaults to 4 (the environment wins
if it sets it): TensorFlow's gs:// reader allocates and zeroes a block of that size for
every file it opens, 64 MB by default, whatever the file's size. Reading 16 flowers shards of
1.25 MB from gs:// cost 1.22-1.27 CPU s per epoch in the training process with 64 MB
blocks, 0.38-0.42 s with 8 MB and 0.28-0.33 s with 4, 2 or 1 MB, or with no block cache
(bench/input_pipeline.py). 4 MB keeps nearly all of that saving and still fetches a
shard of up to 4 MB in one request; a read of the 8 MB TFRecord buffer (trainer/data.py)
takes two.
"""

from __future__ import annotations

import importlib
import os
import types
from typing import Any

GCS_BLOCK_ENV = "GCS_READ_CACHE_BLOCK_SIZE_MB"
GCS_BLOCK_MB = 4


class _LazyModule(types.ModuleType):
    """A module proxy that imports the real module on first attribute access."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._target = name
        self._module: types.ModuleType | None = None

    def _load(self) -> types.ModuleType:
        if self._module is None:
            os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            os.environ.setdefault(GCS_BLOCK_ENV, str(GCS_BLOCK_MB))
            self._module = importlib.import_module(self._target)
        return self._module

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self._load(), attr)


tf: Any = _LazyModule("tensorflow")
keras: Any = _LazyModule("tf_keras")
