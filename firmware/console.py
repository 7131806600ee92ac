"""Running the shell: interactive (prompt_toolkit), scripts, and a console on a serial port.

* :func:`interactive` — the local console: login, then a prompt with tab completion and
  history (``~/.openslb_history``).
* :func:`run_script` — ``-c "cmd; cmd"`` and ``-f FILE``: each command is echoed with its
  output; the first error stops the script with ``file:line: message`` and exit status 1.
* :func:`serve_console` — the same CLI served on a serial port or pty (like an appliance's
  console port): login, then line-by-line commands, echo and backspace handled.
"""

from __future__ import annotations

import sys
from pathlib import Path

from openslb.firmware.shell import CliError, Shell
from openslb.firmware.slb import check_password

__all__ = ["interactive", "run_script", "serve_console", "split_commands"]

LOGIN_TRIES = 3


def split_commands(text: str) -> list[str]:
    """``-c`` text: commands separated by ``;`` or new lines."""
    return [c.strip() for part in text.splitlines() for c in part.split(";") if c.strip()]


def run_script(shell: Shell, commands: list[str], where: str, out=None) -> int:
    out = out or sys.stdout
    for number, line in enumerate(commands, 1):
        try:
            result = shell.execute(line)
        except CliError as e:
            print(f"{where}:{number}: error: {e}", file=out)
            return 1
        if result:
            print(result, file=out)
        if shell.done:
            break
    return 0


def _answer(shell: Shell, line: str) -> str:
    """Run one interactive line: its output, or the error as one line."""
    try:
        return shell.execute(line)
    except CliError as e:
        return f"Error: {e}"


def _login_ok(password_hash: str, ask) -> bool:
    if not password_hash:
        return True
    for _ in range(LOGIN_TRIES):
        if check_password(ask(), password_hash):
            return True
    return False


def interactive(shell: Shell) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory

    class ShellCompleter(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            word = text.split("/")[-1].split(" ")[-1]
            for name in shell.completions(text):
                yield Completion(name, start_position=-len(word))

    session = PromptSession(history=FileHistory(str(Path.home() / ".openslb_history")),
                            completer=ShellCompleter())
    pw = shell.cfg.password_hash
    if not _login_ok(pw, lambda: session.prompt("Enter password: ", is_password=True)):
        print("login failed")
        return 1
    print("openslb management CLI: 'help' lists the commands of each menu, Tab completes.")
    while not shell.done:
        try:
            line = session.prompt(shell.prompt())
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        out = _answer(shell, line)
        if out:
            print(out)
    return 0


class _LineReader:
    """Lines from a byte port with echo and backspace (what a terminal on a serial line needs)."""

    def __init__(self, port) -> None:
        self.port = port

    def write(self, text: str) -> None:
        self.port.write(text.replace("\n", "\r\n").encode())

    def readline(self, echo: bool = True) -> str | None:
        buf = bytearray()
        while True:
            b = self.port.read(1)
            if not b:
                continue
            c = b[0]
            if c in (0x0D, 0x0A):
                self.write("\n")
                return buf.decode(errors="replace")
            if c in (0x08, 0x7F):
                if buf:
                    buf.pop()
                    if echo:
                        self.port.write(b"\b \b")
                continue
            if c == 0x04:   # ^D ends the session
                return None
            if 0x20 <= c < 0x7F:
                buf.append(c)
                if echo:
                    self.port.write(bytes([c]))


def serve_console(shell: Shell, port, once: bool = False) -> None:
    """Serve the CLI on ``port`` (a pyserial object): login, then commands, until ``exit``."""
    io = _LineReader(port)
    while True:
        io.write("\nopenslb console\n")
        ok = _login_ok(shell.cfg.password_hash,
                       lambda: (io.write("Enter password: "), io.readline(echo=False))[1] or "")
        if not ok:
            io.write("login failed\n")
        else:
            shell.done = False
            while not shell.done:
                io.write(shell.prompt())
                line = io.readline()
                if line is None:
                    break
                out = _answer(shell, line)
                if out:
                    io.write(out + "\n")
        if once:
            return
