"""Progress lines of long jobs on the terminal of the run that started them.

Under Snakemake a job's output goes to its log file (``logs/<stage>/<job>.log``), so a
15-minute teacher training would be silent on the terminal. The rules therefore run every
job as ``(export CONDI_PROGRESS_FD=3 CONDI_LOG=LOG; condi ...) 3>&2 > LOG 2>&1``: file
descriptor 3 is Snakemake's own stderr, and :func:`progress` writes one line there per
epoch (``condi: [LOG] epoch 3/15 ...``), naming the log that holds the rest. Run by hand
(``condi train teacher ...``) the variable is unset and the epoch lines reach the terminal
through logging as usual, so :func:`progress` writes nothing.
"""

from __future__ import annotations

import os

PROGRESS_FD_ENV = "CONDI_PROGRESS_FD"
LOG_ENV = "CONDI_LOG"


def progress_fd() -> int | None:
    """The file descriptor progress lines go to (``CONDI_PROGRESS_FD``), or ``None``."""
    value = os.environ.get(PROGRESS_FD_ENV, "")
    return int(value) if value.isdigit() else None


def progress(message: str) -> bool:
    """Write ``condi: [LOG] message`` as one line to ``CONDI_PROGRESS_FD`` when it is set (the
    log file from ``CONDI_LOG``). Never fails the job: a closed descriptor is ignored. Returns
    whether the line was written."""
    fd = progress_fd()
    if fd is None:
        return False
    log = os.environ.get(LOG_ENV)
    text = " ".join(message.split())  # one line, whatever the message holds
    line = f"condi: [{log}] {text}\n" if log else f"condi: {text}\n"
    try:
        os.write(fd, line.encode("utf-8", "backslashreplace"))
    except OSError:
        return False
    return True


def epoch_line(epoch: int, epochs: int, metrics: dict[str, float]) -> str:
    """``epoch 3/15: train_loss 1.8214, val_video_acc 40.91 (12.3 s)``: the epoch (1-based),
    its losses and validation metrics and its time."""
    shown = [
        f"{k} {v:.4g}"
        for k, v in metrics.items()
        if k.startswith(("train_loss", "val_")) and isinstance(v, int | float)
    ]
    took = metrics.get("epoch_time_s")
    tail = f" ({took:.1f} s)" if isinstance(took, int | float) else ""
    return f"epoch {epoch}/{epochs}: " + ", ".join(shown) + tail
