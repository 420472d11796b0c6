"""What each dataset is: image shape, classes, file names, models and serving input.

Plain data, no TensorFlow: flags, recipes and job-spec checks read it. How the files are
read lives in trainer/data.py.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
DIGIT_CLASSES = tuple(str(d) for d in range(10))

# The four uncompressed IDX files of gs://mnist-public, as the codelab read them.
MNIST_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "eval": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    image_size: int  # square side of the images the models see by default
    channels: int
    class_names: tuple[str, ...]
    models: tuple[str, ...]  # registry names in trainer/models.py valid for this dataset
    default_model: str
    tfrecord_glob: str  # file names searched in --data-dir
    serving_input: str  # "pixels" (float values 0-255) or "image_bytes" (JPEG/PNG bytes)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        image_size=28,
        channels=1,
        class_names=DIGIT_CLASSES,
        models=("softmax", "dense", "conv", "bn_conv"),
        default_model="bn_conv",
        tfrecord_glob="*.tfrec",
        serving_input="pixels",
    ),
    "flowers": DatasetSpec(
        name="flowers",
        image_size=192,
        channels=3,
        class_names=FLOWER_CLASSES,
        models=(
            "convnet",
            "squeeze_little",
            "squeeze_dense",
            "squeeze_fast",
            "squeezenet",
            "mobilenet_v2",
            "transfer",
        ),
        default_model="convnet",
        tfrecord_glob="*.tfrec",
        serving_input="image_bytes",
    ),
}
