"""``python -m tests.support.stub_supervisor PORT WORKERS``: the real supervisor, stub workers."""

from __future__ import annotations

import sys

from bot.serving.supervisor import Supervisor, bind_socket


def main() -> None:
    port, workers = int(sys.argv[1]), int(sys.argv[2])

    def command(listen_fd: int, status_fd: int) -> list[str]:
        worker = [sys.executable, "-m", "tests.support.stub_worker"]
        return [*worker, str(listen_fd), str(status_fd)]

    sys.exit(Supervisor(command, workers, bind_socket("127.0.0.1", port)).run())


if __name__ == "__main__":
    main()
