"""Keras image classifiers (MNIST, flowers) trained as Vertex AI custom jobs."""

__version__ = "0.1.0"
