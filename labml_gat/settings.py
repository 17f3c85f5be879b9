r"""
---
title: Settings, flags and errors
summary: >
  One convention for every experiment: a dataclass of settings, a flag per setting,
  checks before anything runs, and one line for a user's mistake.
---

# Settings, flags and errors

Every experiment keeps its settings in one dataclass, a subclass of `Settings`.
A field is a setting and also a command-line flag of the same name: `n_heads` is `--n-heads`.
Its default is the experiment's default, and the `help` in the field's metadata is the flag's help.

```python
@dataclass
class NodeClassificationSettings(Settings):
    n_heads: int = setting(8, 'attention heads K of the first layer')
    layer: str = setting('gatv2', 'the attention layer', choices=('gatv2', 'gat'))
```

`check()` says what is wrong with the settings, before a run starts and before anything is written.
A mistake a user can fix raises `UsageError`; `command` turns it into one line on standard error and
exit status 2, as the parser does for an unknown flag (`--help` shows the usage). A traceback always
means a bug.
"""

import argparse
import contextlib
import dataclasses
import math
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar


class UsageError(Exception):
    """A setting or an input the user can fix: it is printed as one line, with exit status 2."""


def setting(default: Any, help: str, choices: Optional[Sequence] = None,
            path: bool = False) -> Any:
    """A dataclass field that is also a flag: its default, its help and its allowed values.
    A `path` (a file or a folder) starts at the home folder where it starts with `~`, as
    the shell would have it, wherever it is used."""
    metadata = {'help': help, 'choices': choices, 'path': path}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


S = TypeVar('S', bound='Settings')


@dataclasses.dataclass
class Settings:
    """
    ## The settings of an experiment

    The base class of every experiment's settings dataclass.
    """

    def check(self) -> None:
        """Raise `UsageError` for settings that cannot run. Subclasses add their own checks."""
        for field in dataclasses.fields(self):
            choices = field.metadata.get('choices')
            if choices is not None and getattr(self, field.name) not in choices:
                raise UsageError(f'{flag(field.name)} must be one of '
                                 f'{", ".join(map(str, choices))}, '
                                 f'got {getattr(self, field.name)!r}')

    def as_dict(self) -> dict:
        """The settings as plain data, to record with a run."""
        return dataclasses.asdict(self)

    @classmethod
    def from_command_line(cls: type[S], argv: Optional[Sequence[str]] = None,
                          description: str = '') -> tuple[S, set[str]]:
        """
        Parse the flags into settings and check them. Returns the settings and the names of those
        given on the command line. A mistake exits with the parser's one-line error.
        """
        parser = argument_parser(cls, description)
        given = vars(parser.parse_args(argv))
        explicit = {name for name, value in given.items() if value is not None}
        try:
            settings = cls(**{name: value for name, value in given.items()
                              if value is not None})
            settings.check()
            settings.check_given(explicit)
        except UsageError as error:
            parser.error(str(error))
        return settings, explicit

    def check_given(self, given: set) -> None:
        """Raise `UsageError` for a flag given (`given` names the settings given on the
        command line) that the run would not read. Subclasses add their own checks."""


def flag(name: str) -> str:
    """The flag of a setting: `n_heads` is `--n-heads`."""
    return '--' + name.replace('_', '-')


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose mistakes are one line, `prog: error: ...`, and exit status
    2, without the usage before it (a dozen lines that hide the one that matters)."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message}\n')


def argument_parser(cls: type, description: str) -> argparse.ArgumentParser:
    """
    A flag for every field of the dataclass `cls`. Flags left out are `None`, so that the
    dataclass supplies the default and the settings given explicitly are known.
    """
    parser = ArgumentParser(description=description, allow_abbrev=False)
    defaults = cls()
    for field in dataclasses.fields(cls):
        default = getattr(defaults, field.name)
        help = field.metadata.get('help', '')
        # A help that says what happens by default keeps its own words
        if '(default' not in help:
            help += f' (default: {describe_default(default)})'
        options: dict = {'default': None, 'help': help}
        if field.metadata.get('choices') is not None:
            options['choices'] = field.metadata['choices']
        if isinstance(default, bool):
            options['action'] = argparse.BooleanOptionalAction
        elif isinstance(default, list):
            options.update(nargs='+', type=type(default[0]) if default else str)
        elif default is not None:
            options['type'] = type(default)
        else:
            options['type'] = field_type(field)
        if field.metadata.get('path'):
            options['type'] = home_path
        parser.add_argument(flag(field.name), **options)
    return parser


def home_path(text: str) -> str:
    """A path flag's value, where `~` is the home folder, as the shell would have it."""
    try:
        return str(Path(text).expanduser()) if text else text
    except RuntimeError as error:  # `~name` of no user
        raise argparse.ArgumentTypeError(f'{text}: {error}') from None


def field_type(field: dataclasses.Field) -> Callable:
    """The type of an `Optional[...]` field whose default is `None`."""
    for name, type_ in (('int', int), ('float', float)):
        if name in str(field.type):
            return type_
    return str


def describe_default(value: Any) -> str:
    if isinstance(value, list):
        return ' '.join(map(str, value))
    return 'none' if value is None else str(value)


def check_at_least(settings: Settings, minimum: int, names: Iterable[str]) -> None:
    """
    ## Checks

    Each named setting (when not `None`) is a whole number of at least `minimum`."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and value < minimum:
            raise UsageError(f'{flag(name)} must be at least {minimum}, got {value}')


# Seeds are below this: each process's own seeds are derived from them in 64 bits
SEED_LIMIT = 2 ** 32


def check_seed(seed: int, seeds: int = 1) -> None:
    """The seeds `seed` to `seed + seeds - 1`, each a whole number in `[0, 2**32)`."""
    if not 0 <= seed < SEED_LIMIT:
        raise UsageError(f'--seed must be in [0, 2**32), got {seed}')
    if seed + seeds > SEED_LIMIT:
        raise UsageError(f'--seed {seed} --seeds {seeds}: the last seed, '
                         f'{seed + seeds - 1}, must be below 2**32')


# The most PyTorch threads of a process, where the machine has fewer cores: threads beyond
# the cores only wait for each other, and thousands of them end a run that has begun in a
# segmentation fault, or a failed start of a process
MAX_THREADS = 256


def check_threads(threads: int) -> None:
    """`--threads`: at least 1, and at most `MAX_THREADS` or the cores of this machine,
    whichever is more."""
    from labml_gat.seeds import available_cores
    if threads < 1:
        raise UsageError(f'--threads must be at least 1, got {threads}')
    limit = max(MAX_THREADS, available_cores())
    if threads > limit:
        raise UsageError(f'--threads {threads}: at most {limit} PyTorch threads a '
                         f'process; this machine has {available_cores()} cores')


def check_probability(name: str, value: float) -> None:
    """A dropout probability: in $[0, 1)$, since $p = 1$ would drop everything."""
    if not 0 <= value < 1:
        raise UsageError(f'{flag(name)} must be a probability in [0, 1), got {value}')


def check_positive(name: str, value: float, zero: bool = False) -> None:
    """A finite number above 0, or at least 0 with `zero`: a learning rate, a weight decay.
    An infinite one would make every weight NaN at the first step."""
    if math.isfinite(value) and (value > 0 or (zero and value == 0)):
        return
    raise UsageError(f'{flag(name)} must be {"at least 0" if zero else "positive"} and '
                     f'finite, got {value}')


def check_output(name: str, path: Optional[str], folder: bool = False) -> None:
    """
    ### Where outputs go

    One rule for every output, a file (`--summary-json`) or a folder (`--logs`): it goes into a
    folder that exists and can be written, and it is not a folder where a file is wanted or a
    file where a folder is wanted. Nothing is created to check it, and no folder is made for it.
    `name` is the flag as the user typed it.
    """
    if path is None:
        return
    if not path:
        raise UsageError(f'{name} is empty; give a {"folder" if folder else "file name"}')
    target = Path(path).expanduser()
    with path_errors(name, path):
        if folder and target.exists() and not target.is_dir():
            raise UsageError(f'{name} {path} is a file; give a folder')
        # `new/` names a folder, even where none is yet
        if not folder and (target.is_dir() or path.endswith(('/', os.sep))):
            raise UsageError(f'{name} {path} is a folder; give a file name')
        home = target if folder and target.is_dir() else target.resolve().parent
        if home.exists() and not home.is_dir():
            raise UsageError(f'{name} {path}: {home} is a file, not a folder')
        if not home.is_dir():
            raise UsageError(f'{name} {path}: the folder {home} does not exist')
    check_not_records(name, path, folder)
    check_writable(name, path, home)


def check_not_records(name: str, path: str, folder: bool) -> None:
    """
    The project's records, `experiments/results/`, are written by `--record` alone, which
    checks what it replaces (the benchmark's) and keeps itself in a record's command: an
    output there or in a folder below it, the `folder` itself (`--results`) or a file
    (`--summary-json`), would replace a record the pages quote, or leave there a file that
    is not one.
    """
    from labml_gat.results import RESULTS
    # `realpath`, which takes any path, even one the system will not look at
    where, records = (os.path.realpath(os.path.expanduser(p)) for p in (path, RESULTS))
    home = where if folder else os.path.dirname(where)
    if home == records or home.startswith(records + os.sep):
        raise UsageError(f"{name} {path} {'is' if where == records else 'is in'} the "
                         f"folder of the project's records, which only --record writes "
                         f"into: give another folder")


def check_logs(logs: Optional[str]) -> None:
    """
    Where the labml runs go: `--logs`, an output folder (`check_output`), else the folder
    `LABML_GAT_LOGS` names, if set, which labml makes (`check_folder_to_make`).
    """
    if logs is not None:
        check_output('--logs', logs, folder=True)
        return
    from labml_gat.runs import LOGS_ENV_VAR
    folder = os.environ.get(LOGS_ENV_VAR)
    if not folder:
        return
    check_folder_to_make(f'${LOGS_ENV_VAR}', folder, Path(folder).absolute())


def check_apart(name: str, path: Optional[str], folders: dict) -> None:
    """
    The file `path` of the output `name` (`--summary-json`) is not where another output's
    folder goes (`folders`: each flag, or whatever else names the folder, and the folder, or
    `None`): the run would make the folder, and after the work could not write the file in
    its place.
    """
    if not path:
        return
    target = Path(path).expanduser().resolve()
    for other, folder in folders.items():
        if folder and Path(folder).expanduser().resolve() == target:
            raise UsageError(f'{name} {path} is also {other}, a folder the run makes; '
                             f'give each its own path')


def labml_folders(logs: Optional[str], experiment: str) -> dict:
    """Where the labml runs go, for `check_apart`: `--logs`, else `$LABML_GAT_LOGS`, else
    labml's own `logs/`, beside `.labml.yaml` (`labml_gat.runs`), and the folder of the
    runs of the `experiment` in it; the run makes both."""
    from labml_gat.runs import LOGS_ENV_VAR
    if logs is not None:
        name, folder = '--logs', logs
    elif os.environ.get(LOGS_ENV_VAR):
        name, folder = f'${LOGS_ENV_VAR}', os.environ[LOGS_ENV_VAR]
    else:
        from labml import lab
        name, folder = "labml's logs/", str(lab.get_experiments_path())
    return {name: folder, f'{experiment}/ in {name}': str(Path(folder) / experiment)}


def check_folder_to_make(name: str, given: str, folder: Path) -> None:
    """A `folder` made when needed, with the folders above it (`given` as the user gave it):
    the nearest of them that exists is a folder that takes files, and it is not the project's
    records (`check_not_records`), as an output folder given by a flag is not."""
    with path_errors(name, given):
        # A path under a file does not exist either: the first that does is that file
        found = next(above for above in (folder, *folder.parents) if above.exists())
        if not found.is_dir():
            raise UsageError(f'{name} {given}: {found} is a file, not a folder')
    check_not_records(name, given or str(folder), folder=True)
    check_writable(name, given, found)


def check_folder(name: str, path: Optional[str]) -> None:
    """
    An input folder (`--data-dir`): a folder that exists, with `~` for the home folder as the
    loader reads it. An empty path is a mistake, not the current folder.
    """
    if path is None:
        return
    if not path:
        raise UsageError(f'{name} is empty; give a folder')
    with path_errors(name, path):
        is_folder = Path(path).expanduser().is_dir()
    if not is_folder:
        raise UsageError(f'{name} {path} is not a folder')


@contextlib.contextmanager
def path_errors(name: str, path: Any) -> Iterator[None]:
    """A path the system will not look at (a name too long for it, a folder that may not
    be read) is a mistake in the path: one line, with the system's reason. `name` is the
    flag, or `''` for an argument."""
    try:
        yield
    except OSError as error:
        given = f'{name} {path}' if name else str(path)
        raise UsageError(f'{given}: {error.strerror or error}') from None


def check_image(name: str, path: Optional[str]) -> None:
    """An image to write: an output (`check_output`) whose suffix names a format matplotlib
    writes (`.png`, `.svg`, `.pdf`, ...), checked before the work that draws it."""
    if path is None:
        return
    check_output(name, path)
    from matplotlib.backend_bases import FigureCanvasBase
    formats = FigureCanvasBase.get_supported_filetypes()
    if Path(path).suffix.lower().lstrip('.') not in formats:
        suffixes = ', '.join('.' + suffix for suffix in sorted(formats))
        raise UsageError(f'{name} {path}: an image is written as one of {suffixes}; '
                         f'give its suffix')


def check_one_record(record: bool, results: Optional[str]) -> None:
    """`--record` and `--results FOLDER` say where a record goes: one place, not two."""
    if record and results:
        raise UsageError("--record writes into the project's records and --results "
                         "into another folder: give one")


def check_writable(name: str, path: str, folder: Path) -> None:
    """The folder `folder` of the output `path` (given with the flag `name`) takes files."""
    try:
        # An unnamed file that vanishes when closed: proof that the folder takes files
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        raise UsageError(f'{name} {path}: cannot write into {folder}') from None


def check_device(device: str) -> None:
    """A device that exists on this machine, by the one test of it, which `--record` of
    [`labml_gat.results`](results.html) asks too of the device a summary's run used."""
    from labml_gat.results import missing_device
    reason = missing_device(device)
    if reason:
        raise UsageError(f'--device {device}: {reason}')


def command(main: Callable[[Optional[Sequence[str]]], Any],
            torchrun: bool = False) -> Callable[[], None]:
    """
    ## The entry point

    The entry point of a script: `main(argv)` with a user's mistakes as one line. Only a
    script made for torchrun (`torchrun=True`) runs in several of its processes; any other is
    [refused there](distributed.html#scripts-of-one-process) before `main` starts.

    `UsageError` and a missing or corrupt data file (`labml_gat.datasets.MissingDataError`,
    `DataFileError`) end with
    their message and exit status 2; Ctrl-C and `SIGTERM` end with status 130 and 143, after labml
    has marked the run as interrupted. Only the first stop signal counts: torchrun passes a Ctrl-C
    on to its processes, which the terminal has already stopped, and a second one would break off
    the closing of the run. A process of a [distributed job](distributed.html) whose
    peer failed (`LostPeer`) ends with one line and status 1. Stopped, only the first process of
    each machine says so, since all of them are stopped together.
    Anything else is a bug and keeps its traceback. The labml runs go to the folder that
    `LABML_GAT_LOGS` names, where it is set and `--logs` is not given.
    """
    from labml_gat.datasets import DataFileError, MissingDataError
    from labml_gat.distributed import (LostPeer, check_one_process, end_while_waiting,
                                       first_of_machine)

    def run() -> None:
        from labml_gat.runs import use_logs_from_environment
        use_logs_from_environment()
        signal.signal(signal.SIGTERM, _interrupt)
        # A process started with Ctrl-C ignored (in the background) keeps ignoring it
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupt)
        try:
            if not torchrun:
                check_one_process()
            main(sys.argv[1:])
        except (UsageError, DataFileError, MissingDataError) as error:
            # Another process of the machine said it (`distributed.checks_said_once`)
            if not getattr(error, 'said_elsewhere', False):
                print(f'{prog()}: error: {error}', file=sys.stderr)
            sys.exit(2)
        except LostPeer as error:
            print(f'{prog()}: error: {error}', file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            if first_of_machine():
                print(f'{prog()}: stopped', file=sys.stderr)
            status = 143 if _terminated else 130
            # Stopped while it waited for the others, it ends here, without Python's shutdown
            end_while_waiting(status)
            sys.exit(status)
    return run


# Whether the interrupt came from `SIGTERM`
_terminated = False


def _interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C and `SIGTERM` become a `KeyboardInterrupt`, which labml records as an
    interrupted run; the stop signals after it are ignored."""
    global _terminated
    _terminated = signum == signal.SIGTERM
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    raise KeyboardInterrupt


def prog() -> str:
    """The command's name: the script's, as argparse prints it, or `python -m module` for a
    module run as one (`python -m labml_gat.runs`)."""
    spec = getattr(sys.modules.get('__main__'), '__spec__', None)
    if spec is not None and not spec.name.endswith('__main__'):
        return f'python -m {spec.name}'
    return argparse.ArgumentParser().prog
