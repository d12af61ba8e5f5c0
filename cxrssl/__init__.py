"""cxrssl: a reproducible self-supervised pretraining pipeline for chest X-rays."""
