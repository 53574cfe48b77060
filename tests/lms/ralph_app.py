"""Ralph's LRS app (``ralph.api:app``) with one fix, for the tests' file-system backend.

Ralph 5.1.0's file-system LRS backend writes every POST to the same file
(``fs_lrs.jsonl``) with the data backend's default operation, CREATE, which refuses an
existing file: the first POST is stored, every later one answers 500 ("already exists and
overwrite is not allowed"). Appending is what an LRS on one JSON-lines file needs, so the
default becomes APPEND before the app is imported. Run with Ralph's own venv::

    .venv-ralph/bin/uvicorn ralph_app:app --app-dir tests/lms
"""

from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend

FSLRSBackend.default_operation_type = BaseOperationType.APPEND

from ralph.api import app  # noqa: E402 - after the fix above

__all__ = ["app"]
