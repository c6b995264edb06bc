"""Detection models. Every model follows the model contract of :mod:`rtdet.engine.trainer`."""
