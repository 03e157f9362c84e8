"""Where the project's files live, and the one way it writes them: whole or not at all.

Every file the project writes (checkpoints, history and result CSVs, downloads, the drawings the app
saves) goes through `atomic_write` or, for a line added to a log, `append_line`: a crash, Ctrl-C,
SIGTERM or a full disk leaves the old content or the new, never half of it.
"""
import os
import secrets
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA_DIR = ROOT / 'data'                      # MNIST downloads and the app's saved drawings (git-ignored)
DRAWN_FILE = ROOT / 'drawn_digits' / 'uji_digits.json.gz'  # the drawn-digits benchmark (tracked)
MY_DIGITS_DIR = DATA_DIR / 'my_digits'        # the app's "Wrong? It was..." drawings (git-ignored)
RUNS_DIR = ROOT / 'model_checkpoints'         # training runs (git-ignored)
SHIPPED_DIR = RUNS_DIR / 'shipped'            # the shipped models (tracked)
PLOTS_DIR = ROOT / 'training_plots'


class WriteError(OSError):
    """A file could not be written; nothing of the attempt is left. The message names the file and why."""


def atomic_write(path, write):
    """Call write(binary file) on a uniquely named temporary file in path's folder, flush it to disk, then
    rename it over `path`. Raises WriteError (the temporary file removed) when the write fails."""
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp')  # unique: no run clobbers another's
    try:
        with interrupts_deferred():
            with open(tmp, 'xb') as f:  # unlike mkstemp's, the file gets the permissions the umask allows
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException as e:  # KeyboardInterrupt included
        tmp.unlink(missing_ok=True)
        if isinstance(e, (OSError, RuntimeError)):  # torch reports a failed write as a RuntimeError
            raise WriteError(f'could not write {path} ({describe(e)})') from None
        raise


def append_line(path, line):
    """Append one line (str, no newline) to a text file and flush it to disk: the whole line or nothing.
    A short write (a full disk) is cut back off before WriteError is raised, so the next line never
    lands glued to half of this one."""
    path = Path(path)
    data = (line.rstrip('\n') + '\n').encode()
    try:
        with interrupts_deferred(), open(path, 'ab') as f:
            start = f.tell()
            try:
                if f.write(data) != len(data):
                    raise OSError('short write: the disk may be full')
                f.flush()
                os.fsync(f.fileno())
            except BaseException:
                f.truncate(start)
                raise
    except OSError as e:
        raise WriteError(f'could not write {path} ({describe(e)})') from None


def describe(error):
    """An OSError (or torch's RuntimeError for one) in a few words: "No space left on device"."""
    return getattr(error, 'strerror', None) or str(error).strip() or type(error).__name__


def quiet_ctrl_c():
    """For a command line, called before the libraries load (seconds, for torch): a Ctrl-C the program does
    not handle itself ends it with "Interrupted." and status 130, as a shell expects, not a traceback."""
    default = sys.excepthook

    def hook(kind, error, traceback):
        if issubclass(kind, KeyboardInterrupt):
            print('\nInterrupted.', file=sys.stderr)
        else:
            default(kind, error, traceback)
    sys.excepthook = hook


@contextmanager
def interrupts_deferred():
    """Ctrl-C (SIGINT) and SIGTERM wait until the block is done, then take effect. torch.save turns an
    exception raised inside its writer into a RuntimeError, so a Ctrl-C in the middle of a write would read
    as a failed write; a write takes milliseconds. Signals reach only the main thread, so elsewhere this
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    handlers = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in handlers.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if caught:
            signal.raise_signal(caught[0])  # now, through the handler the program had
