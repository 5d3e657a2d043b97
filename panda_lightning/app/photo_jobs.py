"""Inverting a photo for the page: one at a time, in a thread of its own, its progress read without
waiting for it, and cancelled on request. The editor's lock keeps the inversion apart from every
other use of the generator (their hooks on its layer must not meet)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from panda_lightning.app.editor import Editor
from panda_lightning.photos import Box

KEPT_JOBS = 16  # finished jobs whose outcome can still be read


class Cancelled(Exception):
    """Raised in an inversion's progress callback when the page cancels it."""


@dataclass
class Job:
    """One photo's inversion: where it is (stage, step of steps), and how it ended (the photo's
    name in the editor, or the error, or cancelled)."""

    started: float = field(default_factory=time.monotonic)
    stage: str = "waiting"
    step: int = 0
    steps: int = 0
    photo: str | None = None
    error: str | None = None
    cancelled: bool = False
    done: bool = False
    stages: dict[str, str] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "step": self.step, "steps": self.steps, "seconds": round(time.monotonic() - self.started, 1),
            "done": self.done, "photo": self.photo, "error": self.error, "cancelled": self.cancelled, "stages": self.stages,
        }


class PhotoJobs:
    """The page's inversions over ``editor``: :meth:`start` one, read its :meth:`progress`, :meth:`cancel` it."""

    def __init__(self, editor: Editor):
        self.editor = editor
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._guard = threading.Lock()

    def start(self, pixels: Tensor, name: str, box: Box | None) -> str:
        """Start inverting ``pixels`` (``(3, H, W)`` in ``[0, 1]``); the job's id."""
        with self._guard:
            if any(not job.done for job in self._jobs.values()):
                raise ValueError("another photo is being inverted: wait for it, or cancel it.")
            job_id = secrets.token_urlsafe(12)
            job = self._jobs[job_id] = Job()
            while len(self._jobs) > KEPT_JOBS:
                self._jobs.popitem(last=False)
        threading.Thread(target=self._run, args=(job, pixels, name, box), daemon=True, name="panda-app-invert").start()
        return job_id

    def _run(self, job: Job, pixels: Tensor, name: str, box: Box | None) -> None:
        def progress(stage: str, step: int, steps: int) -> None:
            if job.cancelled:
                raise Cancelled
            job.stage, job.step, job.steps = stage, step, steps

        try:
            job.photo = self.editor.add_photo(pixels, name, box, progress=progress)
            job.stages = {stage: str(report) for stage, report in self.editor.sample(job.photo).photo.inversion.stages.items()}
        except Cancelled:
            pass
        except ValueError as error:
            job.error = str(error)
        except Exception as error:  # said to the page, as a request's failure is; the server goes on
            job.error = f"{type(error).__name__}: {error}".splitlines()[0]
        finally:
            job.done = True

    def job(self, job_id: Any) -> Job:
        if not isinstance(job_id, str) or job_id not in self._jobs:
            raise ValueError("job is not an inversion started here (or one long finished).")
        return self._jobs[job_id]

    def cancel(self, job_id: Any) -> Job:
        job = self.job(job_id)
        job.cancelled = not job.done
        return job
