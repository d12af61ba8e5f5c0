"""cxrssl: a reproducible self-supervised pretraining pipeline for chest X-rays."""

__version__ = "0.1.0"
