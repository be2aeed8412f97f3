"""One context-manager idiom for the things tests start: clusters, daemons, nodes."""

from __future__ import annotations

from typing import Self


class StartedWith:
    """``with Thing(...) as thing``: :meth:`start` on entry, :meth:`stop` on exit.

    A start that fails half-way is stopped before the error goes on, so a
    half-started cluster or node leaves nothing behind either.
    """

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
