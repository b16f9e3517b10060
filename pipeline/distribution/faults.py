"""The `NSD_FAULT` test hook (kept in the product, see docs/distributed.md): faults injected at sample indices.

`kill@7` (the worker SIGKILLs itself before rendering sample 7, once per dataset), `kill-rows@7` (it SIGKILLs
itself once the rows file of the shard holding sample 7 is written under its temporary name, before it is
published), `raise@7` (raises once),
`raise-always@7` (raises every time), `pause@7` (sleeps an hour, once). Several are separated by commas.
The driver reads the variable and hands the spec to in-process workers.
"""

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

FAULT_ENV = "NSD_FAULT"


class InjectedFault(RuntimeError):
    """Raised by the `NSD_FAULT=raise@I` test hook."""


def append_log(log_path: Path, text: str) -> None:
    """Appends `text` to a worker's log file."""
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(text)


@dataclass(frozen=True)
class Fault:
    """One injected fault: `action` before rendering sample `index` (see the module docstring)."""

    action: str
    index: int
    always: bool = False

    def fire(self, marker_dir: Path, log_path: Path) -> None:
        """Acts out the fault (once per dataset unless `always`); notes it in `log_path` first."""
        if not self.always:
            marker_dir.mkdir(parents=True, exist_ok=True)
            try:  # O_EXCL: exactly one process across workers and retries fires a once-fault
                os.close(os.open(marker_dir / f".fault-{self.action}-{self.index:06d}", os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
        message = f"NSD_FAULT: {self.action} at sample {self.index} (pid {os.getpid()})"
        logger.warning(message)
        append_log(log_path, message + "\n")
        if self.action in ("kill", "kill-rows"):
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.action == "raise":
            raise InjectedFault(f"NSD_FAULT injected an exception at sample {self.index}")
        elif self.action == "pause":
            time.sleep(3600)
        else:
            raise ValueError(f"unknown fault action {self.action!r}")


def parse_faults(spec: str | None) -> dict[int, Fault]:
    """Parses an `NSD_FAULT` value such as `kill@7,raise-always@12` into {sample index: Fault}.

    Raises:
        ValueError: a malformed item; the message shows the accepted forms.
    """
    faults: dict[int, Fault] = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        action, _, index = item.partition("@")
        always = action.endswith("-always")
        action = action.removesuffix("-always")
        if action not in ("kill", "kill-rows", "raise", "pause") or not index.isdigit() or (always and action != "raise"):
            raise ValueError(f"{FAULT_ENV}={spec!r}: bad item {item!r}; use kill@I, kill-rows@I, raise@I, "
                             "raise-always@I or pause@I, separated by commas")
        faults[int(index)] = Fault(action, int(index), always)
    return faults


