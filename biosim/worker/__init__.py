"""The resident worker: a warm ``biosim`` process that runs commands for new ones (opt-in).

A new ``biosim`` process spends most of its start importing NumPy and Numba (``biosim bench
start``). ``biosim worker start`` starts a background process that has imported them, loaded the
CUBA kernel and then waits on a Unix socket; while it lives, the ``biosim`` command
(:mod:`biosim.launch`) hands it the command line, the working folder, the environment and its
terminal (its standard file descriptors), and the worker runs the command in a fork of itself.
Output, exit status and Ctrl-C behave as in a run in the command's own process.

- :mod:`biosim.worker.protocol`: where the socket is, the messages, the sources' stamp (stdlib only);
- :mod:`biosim.worker.client`: what the command and ``biosim worker start|stop|status`` do (stdlib only);
- :mod:`biosim.worker.server`: the worker process (``python -m biosim.worker.server``).

Linux and macOS only (Unix sockets with descriptor passing); elsewhere every command runs in its
own process.
"""

__all__: list[str] = []
