"""The one base class of the errors a person can act on.

Every error rtdet raises for bad input (a setting, a data file, a model file, a
metrics input, an export that does not reproduce the model) derives from
:class:`RtdetError`; the command line prints it as one ``rtdet: error: ...``
line naming the file or setting and what was wrong, never as a traceback.
Errors keep their usual built-in base as well (``ValueError`` for bad values),
so ``except ValueError`` in user code goes on working.
"""

from __future__ import annotations


class RtdetError(Exception):
    """Bad input that a person can correct; the message says what and where."""


class ModelError(RtdetError, ValueError):
    """A model name, checkpoint or model file that cannot be used (unknown name, not an rtdet file, wrong task)."""
