"""The runner: the one trainer loop and what it needs (checkpoints, evaluation, progress, video,
device and threads). It drives any algorithm through `rltrain.algos.base.Algorithm`."""
