"""Hot reload: which checkpoint a worker should serve, and how a reload reaches every worker.

Two triggers, one rule. `SIGHUP` to `python -m app` loads whatever checkpoint is then at
`DIGITS_CHECKPOINT`; `POST /admin/reload` may name another file inside `DIGITS_CHECKPOINT_DIR`.
Under `python -m app` with several workers the supervisor (`app/serve.py`) keeps the choice in a
file every worker reads (`DIGITS_SUPERVISOR_CHOICE`): the admin request's worker loads the file and
writes it there, then asks the supervisor (SIGUSR1) to pass SIGHUP to every worker; each loads the
chosen file (the one that already has it does nothing), and a worker restarted later starts with it.
A SIGHUP to the supervisor clears the choice first, so it means `DIGITS_CHECKPOINT` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import signal
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the supervisor imports this module, and it holds no torch (settings would bring it)
    from app.settings import Settings

#: Set by the supervisor for its workers: the file holding the checkpoint chosen by the last
#: `POST /admin/reload`, absent when it is `DIGITS_CHECKPOINT`.
CHOICE_ENV = "DIGITS_SUPERVISOR_CHOICE"


def choice_file() -> Path | None:
    given = os.environ.get(CHOICE_ENV)
    return Path(given) if given else None


def chosen_checkpoint(settings: Settings) -> Path:
    """The checkpoint this worker should serve: the supervisor's choice when one was made, else
    DIGITS_CHECKPOINT."""
    chosen = choice_file()
    if chosen is not None:
        with contextlib.suppress(OSError):
            text = chosen.read_text().strip()
            if text:
                return Path(text)
    return settings.checkpoint


def share_choice(checkpoint: Path) -> bool:
    """Under the supervisor: record `checkpoint` for every worker and ask the supervisor to pass the
    reload on. False when this worker has no supervisor of ours (one worker, or another server's)."""
    chosen = choice_file()
    if chosen is None:
        return False
    partial = chosen.with_name(chosen.name + f".{os.getpid()}")
    partial.write_text(f"{checkpoint}\n")
    partial.replace(chosen)  # atomic: a worker reads the old choice or the new one, whole
    os.kill(os.getppid(), signal.SIGUSR1)
    return True


def clear_choice(chosen: Path) -> None:
    """Back to DIGITS_CHECKPOINT (the supervisor, on SIGHUP)."""
    with contextlib.suppress(FileNotFoundError):
        chosen.unlink()


class PathNotAllowed(ValueError):
    """A checkpoint path outside DIGITS_CHECKPOINT_DIR."""


def allowed_folder(settings: Settings) -> Path:
    return (settings.checkpoint_dir or settings.checkpoint.parent).resolve()


def resolve_in_folder(settings: Settings, given: str) -> Path:
    """`given` (relative to DIGITS_CHECKPOINT_DIR, or absolute) as a path inside that folder once
    `..` and symbolic links are resolved; PathNotAllowed otherwise."""
    folder = allowed_folder(settings)
    path = (folder / given).resolve()
    if not path.is_relative_to(folder) or path == folder:
        raise PathNotAllowed(f"{given!r} is not a file inside the allowed folder (DIGITS_CHECKPOINT_DIR)")
    return path


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so the answer's timing does not tell how much of a guess was right."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def listen_for_sighup(reload: Callable[[], Coroutine[Any, Any, None]]) -> bool:
    """Run `reload` on SIGHUP (on the event loop). False where signals cannot be handled here (not
    the main thread: a test client's app)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()

    def on_signal() -> None:
        task = loop.create_task(reload())
        running.add(task)
        task.add_done_callback(running.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_signal)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True
