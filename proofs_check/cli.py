"""The ``proofs-check`` command: list the claims, run them, audit a model with the attack.

Exit status: 0 success; 1 a claim failed; 2 bad input: one line on stderr naming the problem, before any
training, attacking or claim runs; 130 interrupted by Ctrl-C: one line, and a run folder keeps its
checkpoints (``attack --resume`` continues). A traceback means a bug in this tool. Every Ctrl-C ends the command
with 130, even one that Python would discard (raised inside a gc callback of JAX): :func:`main` records the
presses (:func:`numerics.checkpoint.recording_interrupts`) and honours one before reporting success.

Every subcommand is declared once, in :data:`COMMANDS`, as a :class:`Command`: its options (with the
validating types below, so a bad value is a one-line error while the command line is parsed), the checks
that involve several options or files (``check``, run after parsing and before any work), the folders it
writes (``outputs``: each is created and test-written before any work), and ``run``. To add a subcommand
(``distill``, ``defend``, ``sweep``): write its ``add_arguments``, ``check`` and ``run`` functions, append a
``Command`` to ``COMMANDS``, raise :class:`UsageError` for bad input, and let long loops use
:mod:`numerics.checkpoint` (``Interrupted`` is turned into the one-line exit 130 here; ``interrupted`` gives the
command's own line: what it kept and how to go on), and call :func:`numerics.checkpoint.raise_if_interrupted`
between long steps that are not such loops.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from proofs_check.launcher import NOT_STARTED, PROG, end_program, flush_output, tolerate_closed_output
from theory.architecture import Architecture, SpecError, parse_spec
from theory.expressions import grammar_summary


class UsageError(Exception):
    """Bad input: reported in one line, exit status 2."""


class CommandInterrupted(Exception):
    """Ctrl-C: reported in one line, exit status 130."""


def resume_mismatch(option: str, current: Any, stored: Any, out: Path, *, source: str = "",
                    recorded: bool = True) -> UsageError:
    """The one-line refusal of a --resume whose settings differ from the run in ``out``; ``source`` says where the
    current value came from (" (as given)", " (its default)"); ``recorded``: whether the run's record holds the
    setting at all (a damaged record, or a setting the run left unset, used to read "used None")."""
    used = f"used {stored}" if recorded else f"records no {option}"
    return UsageError(f"{option} is {current}{source} but the run in {out} {used}; resume with the same "
                      "settings, or drop --resume to start afresh")


class RunFailed(Exception):
    """A run that could not produce what it measures (an attack whose numbers stopped being finite, a sweep where no
    network fitted its training set): reported in one line, exit status 1."""


# ---------------------------------------------------------------------------------------------------------
# Validating option types: each returns the parsed value or raises ArgumentTypeError with a one-line reason
# ---------------------------------------------------------------------------------------------------------

MAX_COUNT = 2**31 - 1
"""The largest count an option takes (steps, restarts, iterations, budgets, sizes): far beyond any run this machine
finishes, and within the 64-bit integers the compiled loops count in (a step budget of 10^23 ended in an overflow
traceback after training)."""


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _count(text: str) -> int:
    """An integer no larger than :data:`MAX_COUNT`."""
    value = _integer(text)
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text} is too large: at most {MAX_COUNT}")
    return value


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    """The --no-progress option of every long-running command (one definition): no bars, and no time-estimate notes,
    which come with the bars (a trial missed the estimate under --no-progress, as the help did not say)."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars, nor the notes that estimate the time left (a quiet log)")


def positive_int(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    value = _count(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def seed(text: str) -> int:
    from numerics.data import SEED_RULE, is_seed

    value = _integer(text)
    if not is_seed(value):
        raise argparse.ArgumentTypeError(f"must be {SEED_RULE}, got {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def architecture(text: str) -> Architecture:
    """An architecture spec, fully validated (an activation formula goes through the whitelist parser)."""
    try:
        return parse_spec(text)
    except SpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def kernel_architecture(text: str) -> Architecture:
    """An architecture spec whose analytic kernel exists (every layer kind has its kernel step)."""
    arch = architecture(text)
    if not arch.has_kernel:
        raise argparse.ArgumentTypeError(f"{arch.spec}: the analytic kernel of this chain is not available (a layer "
                                         "kind's kernel step is not written yet)")
    return arch


def folder(text: str) -> Path:
    """A folder to write into: it may not exist yet, but nothing on its path may be a file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty folder name")
    path = Path(text)
    try:
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise argparse.ArgumentTypeError(f"cannot create {text}: {parent} is a file")
                break
    except OSError as error:  # e.g. a name longer than the file system allows
        raise argparse.ArgumentTypeError(f"cannot use {text[:60]}{'...' if len(text) > 60 else ''}: "
                                         f"{error.strerror or error}") from None
    return path


def saved_model(text: str):
    """A model file written by numerics.training.save_model: read without running anything, every array checked."""
    import numerics  # noqa: F401  (float64 on)
    from numerics.checkpoint import FileError
    from numerics.training import load_model

    path = Path(text)
    try:
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder, not a model file")
        if path.exists() and not path.is_file():  # a device or a pipe (a link to /dev/zero read "no such file")
            raise argparse.ArgumentTypeError(f"{text} is not a regular file (a device, a pipe or a socket), not a "
                                             "model file")
        if path.exists() and path.suffix != ".npz":
            raise argparse.ArgumentTypeError(f"{text} is not an .npz model file (save_model writes .npz)")
        model = load_model(text)
        model.source = path
        return model
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"no such file: {text}") from None
    except (FileError, OSError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def ensure_writable(path: Path, option: str) -> None:
    """Create ``path`` and write (then remove) a probe file in it; UsageError naming ``option`` if impossible."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as error:
        raise UsageError(f"cannot write to {option} {path}: {error.strerror or error}") from None


def previous_run(out: Path, *, resume: bool) -> dict | None:
    """The run record (run.json) in ``out``, or None. A damaged one is refused (CheckpointError) only for --resume:
    without it the run starts afresh and replaces it, as README says of every run folder."""
    from numerics.checkpoint import CheckpointError, read_run

    if not out.is_dir():
        return None
    try:
        return read_run(out)
    except CheckpointError:
        if resume:
            raise
        return None


def earlier_run(out: Path, command: str, what: str, *, resume: bool) -> dict | None:
    """:func:`previous_run` of a command that keeps a run record, refusing (one line) a folder that holds another
    command's run, even when starting afresh: the two runs' files would mix. ``what`` names the run ("an attack")."""
    from numerics.checkpoint import with_article

    previous = previous_run(out, resume=resume)
    if previous is not None and previous.get("command") != command:
        raise UsageError(f"{out} holds {with_article(repr(previous.get('command')))} run, not {what}; choose another "
                         "--out")
    if resume and previous is None:  # a misspelt --out, or a folder of results without a run (attack-curve --combine)
        try:
            owner = (out / OWNER_FILE).read_text().strip() if (out / OWNER_FILE).is_file() else None
            files = [path.name for path in out.iterdir() if not path.name.startswith(".")] if out.is_dir() else []
        except (OSError, UnicodeDecodeError):
            owner, files = None, ["?"]
        if owner is not None and owner != command:  # "drop --resume" would then be refused for this very reason
            raise UsageError(f"nothing to resume in {out}: it holds the results of {owner!r}, not of {command!r}; "
                             "choose another --out")
        if files and owner is None:
            raise UsageError(f"nothing to resume in {out}: it holds no run record (run.json) but other files; choose "
                             "another --out")
        raise UsageError(f"nothing to resume in {out}: it holds no run record (run.json); drop --resume to start a "
                         "run there")
    return previous


def check_resumed_settings(stored: dict, current: dict, out: Path, shown=lambda name, value: value, *,
                           typed=None, never_default: tuple[str, ...] = (), options_recorded: bool = True) -> None:
    """Refuse (one line, :func:`resume_mismatch`) a resumed run whose settings differ from the stored ones, naming
    the first option that differs; ``shown(name, value)`` is how a value is written; ``typed`` holds the options
    typed on the command line (None: not known, and the line says "as given, or its default"), and the settings in
    ``never_default`` have no default (the line says neither); without ``options_recorded`` (a run folder written
    before runs recorded their options) the line says that its options must be typed."""
    from numerics.checkpoint import first_difference

    difference = first_difference(stored, current)
    if difference is not None:
        name, was, now = difference
        source = ("" if name in never_default else " (as given, or its default)" if typed is None
                  else " (as given)" if name in typed else " (its default)")
        recorded = name in stored or shown(name, None) is not None  # the command writes an absent one in words
        refusal = resume_mismatch(_option(name), shown(name, now), shown(name, was), out, source=source,
                                  recorded=recorded)
        if not options_recorded and name not in (typed or ()):
            refusal = UsageError(f"{refusal} (its run.json predates recorded options: type the run's options with "
                                 "--resume)")
        raise refusal


OWNER_FILE = ".proofs-check-command"
"""Written in every output folder a command is about to fill, holding the command's name: a folder holds one
command's results (a sweep, defend or attack-curve run into an attack's folder used to exit 0 with the two
commands' files mixed)."""


def claim_folder(path: Path, option: str, command: str) -> None:
    """UsageError naming ``option`` when ``path`` holds another command's results (:data:`OWNER_FILE`); else mark
    it as this command's."""
    from numerics.checkpoint import unreadable

    marker = path / OWNER_FILE
    try:
        owner = marker.read_text().strip() if marker.is_file() else None
    except OSError as error:
        raise UsageError(f"{option} {path}: {unreadable(marker, error)}, so whose results the folder holds is "
                         f"unknown; choose another {option}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{option} {path}: {marker} is not text, so whose results the folder holds is unknown; "
                         f"choose another {option}") from None
    if owner is not None and owner != command:
        raise UsageError(f"{option} {path} holds the results of {owner!r}, not of {command!r}: the files of two "
                         f"commands would mix; choose another {option}")
    if owner is None and not any((path / name).is_file() for name in _unmarked_run_files()):
        _refuse_someone_elses_files(path, option, command)
    try:
        marker.write_text(command + "\n")
    except OSError as error:
        raise UsageError(f"cannot write to {option} {path}: {error.strerror or error}") from None


def _unmarked_run_files() -> tuple[str, ...]:
    """Files that make a folder without :data:`OWNER_FILE` a proofs-check folder all the same: it was filled before
    commands marked their folders (a run record; a report of ``run``)."""
    from numerics.checkpoint import RUN_RECORD
    from proofs_check.report import REPORT_JSON

    return RUN_RECORD, REPORT_JSON


def _refuse_someone_elses_files(path: Path, option: str, command: str) -> None:
    """UsageError when ``path`` (no proofs-check marker, no run record or report) holds entries that are not hidden:
    they are not marked as a proofs-check run's, and a run there would write over any of the same name (a folder of
    the user's own metrics.json and results once lost them). A subfolder with its own :data:`OWNER_FILE` is another
    command's results, not the user's: ``sweep --out R/sweep`` then ``run E1 --out R`` reuses the sweep (README)."""
    try:
        entries = sorted(entry.name for entry in path.iterdir()
                         if not entry.name.startswith(".") and not (entry / OWNER_FILE).is_file())
    except OSError:
        return  # ensure_writable made it (or the marker's write names the problem)
    if not entries:
        return
    if command == "attack" and ATTACK_FILES["model"] in entries:  # the model an attack writes would replace the
        raise UsageError(f"{option} {path} holds {ATTACK_FILES['model']} but no proofs-check run: a run there would "
                         f"replace it; choose another {option} (pass the model with --model)")
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise UsageError(f"{option} {path} holds files not marked as proofs-check results ({shown}): a run there could "
                     f"replace them; choose an empty or new {option}, or remove them")


# ---------------------------------------------------------------------------------------------------------
# The command table
# ---------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Command:
    """One subcommand: declared once, validated before any work (module docstring)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    check: Callable[[argparse.Namespace], None] = lambda args: None
    outputs: tuple[str, ...] = ()
    """Destinations of options naming folders the command writes (created and test-written before work)."""
    epilog: str = ""
    interrupted: Callable[[argparse.Namespace, KeyboardInterrupt], str] | None = None
    """The one line for Ctrl-C (after "proofs-check: "): where it stopped, what was kept, how to go on (default:
    :func:`_interrupted_text` without a run folder to resume)."""
    alternatives: tuple[tuple[str, ...], ...] = ()
    """Groups of options (destinations) that say one thing in different ways, e.g. attack's --model and the network
    to train (--arch, --width, ...): a --resume adds no recorded option of a group while one of another group is
    typed (:func:`with_recorded_options`)."""


def architecture_help() -> str:
    """The spec grammar, with the activations and formula functions read from the code."""
    from theory.activations import all_activations

    activations = ", ".join(f"{entry.name} ({', '.join(f'{p}=' for p in entry.parameters)})" if entry.parameters
                            else entry.name for entry in all_activations())
    return ("Architecture spec: ACTIVATION:DEPTH[:KEY=VALUE]..., e.g. relu:2 or erf:3:sw=1.5:sb=0.1,\n"
            "or a chain of layers joined by '>', e.g. conv3x3:c=32 > relu > gap > dense (layers: dense, convK,\n"
            "convKxK (c=channels), gap, flatten, res:s=SCALE:act=ACTIVATION, an activation; docs/command.md).\n"
            f"Activations: {activations}.\n"
            "Keys: sw (sigma_w, default 1), sb (sigma_b, default 0 = no biases), param (ntk | standard),\n"
            "res (residual branch scale).\n"
            f"expr:DEPTH:phi=FORMULA takes a formula in x made of {grammar_summary(activation=True)}, e.g. "
            "expr:2:phi=tanh(x);\n"
            "it must be real, finite and smooth at every real x, and grow slower than every exp(c x**2).")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (unless it has none) and keeps the epilog's line breaks."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS \
                or "%(default)" in (action.help or "") or "(default:" in (action.help or ""):
            return action.help
        if isinstance(action.default, (tuple, list)):  # shown as typed: comma-separated, "none" for None
            shown = ",".join("none" if value is None else str(value) for value in action.default)
            return f"{action.help} (default: {shown})"
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Errors in one line (exit 2). With ``typed_only`` every option keeps its text and has no default, so that
    parsing yields just the options typed, as typed (:func:`typed_options`)."""

    def __init__(self, *args, typed_only: bool = False, **kwargs):
        self.typed_only = typed_only
        self.typed_forms: dict[str, tuple[str, str, bool]] = {}
        """dest -> (its option string, how it takes values: "flag", "repeated", "several" or "one", whether they
        name files or folders) of every option (typed_only)."""
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        if not self.typed_only or kwargs.get("action") in ("help", "version"):
            return super().add_argument(*args, **kwargs)
        names_a_path = kwargs.pop("type", None) in (folder, saved_model)
        kwargs.pop("choices", None)
        action = super().add_argument(*args, **{**kwargs, "default": argparse.SUPPRESS})
        takes = ("flag" if action.nargs == 0 else "repeated" if kwargs.get("action") == "append"
                 else "one" if action.nargs is None else "several")
        self.typed_forms[action.dest] = (action.option_strings[0] if action.option_strings else "", takes, names_a_path)
        return action

    def error(self, message):  # one line, exit 2
        raise UsageError(message)


LOG_WIDTH = 160
"""Columns of a table printed to a log or pipe."""


def command_console():
    """The console every command prints to (rich): numbers and paths not highlighted; in a terminal, prose wraps
    at its width; elsewhere (a log, a pipe) every printed line stays one line and tables take
    :data:`LOG_WIDTH` columns (rich's default there, 80, cut the sweep table's numbers to "1.83e-...")."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=True, width=LOG_WIDTH)
    return console


def version_text() -> str:
    """``proofs-check --version``: the project's version, Python's and the numerical libraries', and the code's
    fingerprint (numerics.checkpoint.software, the record every result file carries)."""
    from numerics.checkpoint import software

    record = software()
    libraries = ", ".join(f"{name} {record[name]}" for name in ("jax", "neural-tangents", "sympy", "numpy"))
    return f"{PROG} {record['recon-ntk']} (Python {record['python']}; {libraries}; code {record['code']})"


def build_parser(*, typed_only: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Run the claim registry of recon-ntk, or audit a model's leakage.",
                     epilog=architecture_help(), formatter_class=_Formatter, typed_only=typed_only)
    parser.add_argument("--version", action="version", version=version_text(),
                        help="the versions of recon-ntk and of the libraries its numbers depend on")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=functools.partial(_Parser, typed_only=typed_only))
    parser.commands = {}
    for command in COMMANDS:
        parser.commands[command.name] = sub.add_parser(command.name, help=command.help, description=command.help,
                                                       epilog=command.epilog, formatter_class=_Formatter)
        command.add_arguments(parser.commands[command.name])
    return parser


NOT_RECORDED = ("resume", "no_progress")
"""Options a run folder's record leaves out besides the folder itself: how a run is started or shown, not what it
computes."""


def typed_options(argv: list[str]) -> dict[str, list[str]]:
    """The options of a command line that parses (``argv``) as they were typed, by destination: each as the words
    that give it again (``--n=5``; ``--arch=a --arch=b`` for a repeated one; ``--rescale`` for a flag), a file or
    folder named by its absolute path, so that the words mean the same from another working folder. A run records
    these (run.json, "options") and ``--resume`` adds the recorded ones that are not typed again
    (:func:`with_recorded_options`)."""
    import os

    parser = build_parser(typed_only=True)
    given = vars(parser.parse_args(argv))
    forms = parser.commands[given.pop("command")].typed_forms
    words = {}
    for dest, value in given.items():
        option, takes, names_a_path = forms[dest]
        values = [os.path.abspath(v) if names_a_path else v for v in (value if takes in ("repeated", "several")
                                                                       else [value])]
        if takes == "flag":
            words[dest] = [option]
        elif takes == "several" or not option:  # the option once (none for a positional), then its values
            words[dest] = [option, *values] if option else values
        else:
            words[dest] = [f"{option}={v}" for v in values]
    return words


def with_recorded_options(argv: list[str], typed: dict[str, list[str]], args, command: "Command"):
    """``args`` of a ``--resume``, with every option that the resumed run recorded (run.json, "options") and that is
    not typed again (``typed``, :func:`typed_options` of ``argv``): ``--resume --out DIR`` alone continues a run
    with the options it was started with. Returns the parsed arguments, with ``resumed_options`` (the options
    added, by destination; empty where the run records none: a run folder written before runs recorded their
    options, or nothing to resume). A recorded option this version no longer reads is one line, exit 2."""
    from numerics.checkpoint import CheckpointError, read_run

    args.resumed_options = {}
    out = getattr(args, command.outputs[0])
    try:
        previous = read_run(out) if out.is_dir() else None
    except CheckpointError:  # the command's check refuses it in one line
        return args
    recorded = (previous or {}).get("options") if (previous or {}).get("command") == command.name else None
    if not isinstance(recorded, dict) or not all(
            isinstance(words, list) and all(isinstance(word, str) for word in words) for words in recorded.values()):
        return args
    replaced = {dest for group in command.alternatives if not typed.keys() & set(group)
                for other in command.alternatives if typed.keys() & set(other) for dest in group}
    added = {dest: words for dest, words in recorded.items() if dest not in typed and dest not in replaced}
    if not added:
        return args
    try:
        resumed = build_parser().parse_args([*argv, *(word for words in added.values() for word in words)])
    except UsageError as error:
        raise UsageError(f"the run in {out} records options that cannot be used now ({_one_line(error)}); give its "
                         "options on the command line, or drop --resume to start afresh") from None
    resumed.resumed_options = added
    return resumed


def resumable_options(argv: list[str], args, command: "Command"):
    """For a command with ``--resume``: ``args`` with the resumed run's recorded options added
    (:func:`with_recorded_options`), ``typed`` (the destinations typed on this command line) and
    ``recorded_options`` (what this run records for a later ``--resume``: the options typed or added, without
    ``NOT_RECORDED`` and the run folder). Other commands' ``args`` are returned as they are."""
    if not hasattr(args, "resume"):
        return args
    typed = typed_options(argv)
    args = with_recorded_options(argv, typed, args, command) if args.resume else args
    args.typed = set(typed)
    args.recorded_options = {dest: words for dest, words in {**getattr(args, "resumed_options", {}), **typed}.items()
                             if dest not in (*NOT_RECORDED, *command.outputs)}
    return args


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None, *, requests=None) -> int:
    """Run one command; return its exit status (module docstring). Called without ``argv`` it is the program (the
    ``proofs-check`` script through :func:`proofs_check.launcher.main`, which passes the ``requests`` it has been
    recording since the process started; ``python -m proofs_check.cli``) and ends the process itself
    (:func:`_exit_program`), writing on through a closed standard output (:func:`tolerate_closed_output`)."""
    if argv is None:
        tolerate_closed_output()
    try:
        from numerics.checkpoint import recording_interrupts

        with recording_interrupts(requests) as requests:
            requests.raising = True  # the program's requests only counted while it imported this module and JAX
            if requests.requested:  # pressed as the program started (or its KeyboardInterrupt discarded by Python)
                raise KeyboardInterrupt
            code, late = _command(argv, requests)
            if argv is None:
                _exit_program(code, late, requests)
    except KeyboardInterrupt:  # while JAX was imported, before the command's Ctrl-C handler was in place
        if requests is not None:
            requests.finish()
        print(f"{PROG}: {NOT_STARTED}", file=sys.stderr)
        code = 130
    return code


def prepare_outputs(command: "Command", args: argparse.Namespace) -> None:
    """Make each of the command's output folders, refusing (UsageError) one it cannot write or that holds another
    command's or the user's files (:func:`claim_folder`), and mark it as this command's; before any work."""
    for destination in command.outputs:
        ensure_writable(getattr(args, destination), _option(destination))
        claim_folder(getattr(args, destination), _option(destination), command.name)


def _command(argv: list[str] | None, requests) -> tuple[int, str | None]:
    """Parse, check and run one command under ``requests`` (numerics.checkpoint.InterruptRequests); map its
    exceptions to one line and an exit status. A Ctrl-C whose KeyboardInterrupt Python discarded is honoured
    before success is reported. Returns the exit status and, after a success, the line for a Ctrl-C still to come
    (None where a line was printed)."""
    args = command = None
    running = False
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(argv)
        command = next(c for c in COMMANDS if c.name == args.command)
        args = resumable_options(argv, args, command)
        command.check(args)
        prepare_outputs(command, args)
        if getattr(args, "resumed_options", None) and getattr(args, "previous", None) is not None:
            from numerics.checkpoint import RUN_RECORD

            import shlex

            shown = shlex.join(word for words in args.resumed_options.values() for word in words)
            print(f"resuming with the options {getattr(args, command.outputs[0]) / RUN_RECORD} records: {shown}")
        running = True
        code = command.run(args)
    except BaseException as error:
        interrupted = requests.finish()
        if not running and (isinstance(error, KeyboardInterrupt) or interrupted) \
                and not isinstance(error, (UsageError, SpecError)):
            # pressed while the command line was read and checked: nothing was done (the line was a bare
            # "interrupted", which says neither)
            print(f"{PROG}: {NOT_STARTED}", file=sys.stderr)
            return 130, None
        code, line = _failure(error, args, command, interrupted=interrupted)
        print(f"{PROG}: {line}", file=sys.stderr)
        return code, None
    if requests.finish():
        print(f"{PROG}: {_finished_text(args)}", file=sys.stderr)
        return 130, None
    return code, _finished_text(args)


def out_of_memory_text(error: BaseException) -> str | None:
    """The line for a run that asked for more memory than the machine has (numpy's MemoryError; XLA's
    RESOURCE_EXHAUSTED, e.g. defend's kernel-space attack on a convolutional chain asked for 39 GB), or None for
    any other error. Not a bug of the tool: the sizes asked for do not fit (exit 1, no traceback)."""
    text = str(error)
    if isinstance(error, MemoryError):
        asked = ""
    elif isinstance(error, RuntimeError) and ("RESOURCE_EXHAUSTED" in text or "Out of memory" in text):
        import re

        found = re.search(r"allocating (\d+) bytes", text)
        asked = f" (an allocation of {int(found.group(1)) / 1e9:,.1f} GB)" if found else ""
    else:
        return None
    return (f"out of memory{asked}: the sizes asked for do not fit this machine; rerun with fewer points, "
            "reconstructions, channels or a smaller width (what the run folder saved is kept)")


def _failure(error: BaseException, args, command, *, interrupted: bool) -> tuple[int, str]:
    """(exit status, line) for an exception that ended a command; re-raises a bug's (a traceback), and argparse's
    SystemExit (--help)."""
    from numerics.checkpoint import FileError

    if isinstance(error, (UsageError, SpecError, FileError)):  # FileError: a checkpoint or model that cannot be used
        return 2, f"error: {_one_line(error)}"
    from numerics.attack import AttackFailed

    if isinstance(error, (RunFailed, AttackFailed)):
        return 1, f"error: {_one_line(error)}"
    memory = out_of_memory_text(error)
    if memory is not None:
        return 1, f"error: {memory}"
    if isinstance(error, CommandInterrupted):
        return 130, _one_line(error)
    if isinstance(error, KeyboardInterrupt) or (interrupted and isinstance(error, Exception)):
        # a library that turned the KeyboardInterrupt into its own error is still Ctrl-C, not a bug
        interruption = error if isinstance(error, KeyboardInterrupt) else KeyboardInterrupt()
        if command is not None and command.interrupted is not None:
            return 130, _one_line(command.interrupted(args, interruption))
        return 130, _interrupted_text(interruption, resumable=False)
    raise error


def _exit_program(code: int, late: str | None, requests) -> None:
    """End the process with ``code`` now, skipping the interpreter's teardown: every file is written and closed,
    and the teardown (0.6-1.1 s freeing JAX's objects, measured after distill) runs after Python has put back the
    default Ctrl-C action, so a Ctrl-C there killed the process silently with status 130 although the run had
    finished. Until here ``requests`` counts the presses; one since the command's work ended turns a success into
    130 with ``late``, its line (None: a line was printed already, the status stays)."""
    flush_output()  # what the command printed comes before the line
    if late is not None and requests.requested:
        print(f"{PROG}: {late}", file=sys.stderr)
        code = 130
    end_program(code)


def step_text(interruption: KeyboardInterrupt) -> str:
    """The words ' at step S of T (what)' for a loop of numerics.checkpoint that stopped (Interrupted), ' with what
    complete at step S' for one that had ended, else ''."""
    step = getattr(interruption, "step", None)
    if step is None:
        return ""
    if step and interruption.total == step:  # the loop had ended (training met its target): nothing left of it
        return f" with {interruption.what} complete at step {step}"
    total = f" of {interruption.total}" if interruption.total else ""
    return f" at step {step}{total} ({interruption.what})"


def _interrupted_text(interruption: KeyboardInterrupt, *, resumable: bool, started: bool = False,
                      saved: str = "") -> str:
    """One line for Ctrl-C: the step a loop of numerics.checkpoint stopped at, and how to go on: --resume where the
    run folder holds a run (``saved``: what it holds, when no loop named its step), a plain rerun where a resumable
    command (``started``) stopped before saving anything."""
    where = step_text(interruption)
    if resumable:
        return f"interrupted{where or saved}; rerun with --resume to continue"
    return f"interrupted{where}" + ("; nothing was saved yet: rerun the same command to start again" if started else "")


def _finished_text(args) -> str:
    """The line for a Ctrl-C that took effect only once the command's work was done (Python had discarded its
    KeyboardInterrupt, or it came as the command ended): the results were all written; the status says interrupted."""
    out = getattr(args, "out", None)
    return ("interrupted (Ctrl-C took effect only as the command finished): its results are complete"
            + (f" in {out}" if out else ""))


def _saved_progress(out: Path, stages) -> str:
    """What a run folder holds, for the Ctrl-C line when no loop named its step: the latest of ``stages`` (file,
    checkpoint kind, what, step budget; latest first) found in ``out``: " with step S of T (what) saved" for a
    checkpoint, " with WHAT saved" for a file without steps (kind None: the trained model); "" when none is."""
    from numerics.checkpoint import Checkpoint, CheckpointError

    for name, kind, what, budget in stages:
        path = out / name
        if not path.is_file():
            continue
        if kind is None:
            return f" with {what} saved"
        try:
            step = Checkpoint(path, kind=kind).peek()[0]
        except CheckpointError:  # unreadable: the line names an earlier stage, or none
            continue
        return f" with step {step} of {budget} ({what}) saved"
    return ""


def run_folder_interrupted(args, interruption: KeyboardInterrupt, stages) -> str:
    """The Ctrl-C line of a command whose run folder resumes (attack, distill): the step a loop stopped at, else
    what the folder holds; --resume where it holds something, a plain rerun where nothing was saved yet."""
    out = getattr(args, "out", None)
    saved = _saved_progress(out, stages) if isinstance(out, Path) else ""
    resumable = bool(step_text(interruption) or saved)
    return _interrupted_text(interruption, resumable=resumable, started=hasattr(args, "resume"), saved=saved)


def _attack_interrupted(args, interruption: KeyboardInterrupt) -> str:
    """attack's Ctrl-C line: the attack's checkpoint, else the trained model, else training's checkpoint."""
    return run_folder_interrupted(args, interruption, [
        (ATTACK_FILES["attack"], "attack", "the attack", args.steps),
        (ATTACK_FILES["model"], None, "the trained model", None),
        (ATTACK_FILES["train"], "train", "training", args.train_steps)])


def _option(name: str) -> str:
    """The command-line spelling of an option's destination: train_steps -> --train-steps."""
    return "--" + name.replace("_", "-")


# ---------------------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------------------

def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="print every claim's statement, derivation and "
                        "checks as Markdown (the source of docs/claims.md)")


def _list_claims(args) -> int:
    if args.markdown:
        from proofs_check.claims import load_claims
        from proofs_check.docs import claims_markdown

        sys.stdout.write(claims_markdown(load_claims()))
        return 0
    from proofs_check.report import ByWidth

    command_console().print(ByWidth(lambda: _claim_list(stacked=False), lambda: _claim_list(stacked=True)))
    return 0


def _claim_list(*, stacked: bool):
    """``list``'s table: a column per kind of step, or (narrow terminals) their counts in one column of words."""
    from rich.table import Table

    from proofs_check.claims import load_claims
    from proofs_check.registry import counted

    table = Table(title="claims", caption="--arch: the claim checks the architectures run --arch gives (else its own)")
    kinds = ("derivations", "checks", "counterexamples")
    for column in ("id", "title", *(("steps",) if stacked else (*kinds, "--arch"))):
        table.add_column(column)
    for claim in load_claims().values():
        counts = [len(getattr(claim, kind)) for kind in kinds]
        if stacked:
            cells = [", ".join(counted(n, kind[:-1]) for n, kind in zip(counts, kinds))
                     + ("; takes --arch" if claim.uses_archs else "")]
        else:
            cells = [*map(str, counts), "yes" if claim.uses_archs else ""]
        table.add_row(claim.id, claim.title, *cells)
    return table


# ---------------------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------------------

def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID", help="claim IDs (default: all)")
    parser.add_argument("--arch", action="append", default=[], type=architecture, metavar="SPEC",
                        help="architecture spec (repeatable); replaces the default architectures of the claims "
                             "that take architectures, marked in `list` (default: each claim's own)")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick", help="problem sizes")
    parser.add_argument("--seed", type=seed, default=0, help="seed of every random draw")
    parser.add_argument("--out", type=folder, default="reports/latest", help="report folder")
    parser.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                        help="claims run at once, each in a fresh process of its own, longest first, measuring "
                             "what `run ID` alone measures (default: one per core this command may use, at most one "
                             "per claim; 1: all in the command's own process)")
    add_no_progress(parser)


def _check_run(args) -> None:
    from proofs_check.claims import load_claims
    from proofs_check.parallel import not_in_workers, worker_count

    registry = load_claims()
    unknown = [i for i in args.ids if i.upper() not in registry]
    if unknown:
        raise UsageError(f"unknown claim {', '.join(i if i.strip() else repr(i) for i in unknown)}; "
                         f"known: {', '.join(registry)}")
    named = list(dict.fromkeys(i.upper() for i in args.ids))  # each claim once, in the order given
    twice = given_twice("--arch", [arch.spec for arch in args.arch], "each claim would check it twice")
    if twice is not None:
        raise UsageError(twice)
    args.ids = named or list(registry)
    fixed = [i for i in named if not registry[i].uses_archs]
    if args.arch and fixed:
        taking = ", ".join(i for i in registry if registry[i].uses_archs)
        verbs = ("checks", "does", "it") if len(fixed) == 1 else ("check", "do", "them")
        raise UsageError(f"--arch: {', '.join(fixed)} {verbs[0]} fixed architectures and {verbs[1]} not take --arch "
                         f"(only {taking} do); run {verbs[2]} without it")
    if args.jobs is not None and worker_count(args.jobs, len(args.ids)) > 1:
        elsewhere = not_in_workers([registry[i] for i in args.ids])
        if elsewhere is not None:
            raise UsageError(f"--jobs {args.jobs}: {elsewhere}; run with --jobs 1 (every claim in this process)")
    for arch in args.arch or []:
        refusing = [i for i in args.ids if registry[i].uses_archs and not _claim_takes(i, arch)]
        if refusing:
            raise UsageError(f"--arch {arch.spec}: {', '.join(refusing)} do not apply: its analytic kernel is not "
                             "available (a layer kind's kernel step is not written yet)")


def _claim_takes(claim_id: str, arch) -> bool:
    """Whether a claim that takes --arch (K1, D1, R1) applies to ``arch``: every chain with an analytic kernel
    (fully connected, residual, convolutional with gap or flatten, mixed activations), since each compares a finite
    network with its kernel; other chains are refused before any work."""
    return arch.has_kernel


def claim_line(result) -> str:
    """The line ``run`` prints as a claim ends where no progress bar is shown: "K1: passed (82 outcomes) in 61 s"."""
    verdict = "passed" if result.passed else "FAILED"
    from proofs_check.registry import counted

    return f"{result.claim.id}: {verdict} ({counted(len(result.outcomes), 'outcome')}) in {result.seconds:.0f} s"


def _run(args) -> int:
    import numerics  # noqa: F401  (float64 on)

    from numerics.checkpoint import raise_if_interrupted
    from numerics.progress import progress_bar
    from proofs_check.claims import load_claims
    from proofs_check.parallel import WorkerStopped, not_in_workers, run_in_workers, worker_count
    from proofs_check.registry import Context, counted, run_claim
    from proofs_check.report import remove_report, report_dict, summary_table, write_report

    console = command_console()
    registry = load_claims()
    claims = [registry[i] for i in args.ids]
    jobs = worker_count(args.jobs, len(claims))
    if jobs > 1 and not_in_workers(claims) is not None:  # by default; an explicit --jobs was refused (_check_run)
        jobs = 1
    remove_report(args.out)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    start = time.perf_counter()
    results = []
    total = sum(1 for claim in claims for _ in claim.steps())
    where = {}  # claim id -> its current step, for the line of a Ctrl-C
    try:
        bar_shown = console.is_terminal and not args.no_progress
        with progress_bar(enabled=bar_shown, console=console, transient=True) as bar:
            task = bar.add_task("starting", total=total)

            def claim_finished(result):
                if not bar_shown:  # no progress bar (a log, a pipe, --no-progress): one line per claim as it ends
                    console.print(claim_line(result), highlight=False)

            if jobs > 1:
                results = run_in_workers(
                    claims, jobs=jobs, profile=args.profile, seed=args.seed,
                    arch_specs=[arch.spec for arch in args.arch], out_dir=args.out,
                    running=lambda messages: bar.update(task, description=" | ".join(messages.values()) or "starting"),
                    step_finished=lambda: bar.advance(task), claim_finished=claim_finished, poll=raise_if_interrupted,
                    results_so_far=results, where=where)
            else:
                def step_finished(_where: str):
                    bar.advance(task)
                    raise_if_interrupted()  # a Ctrl-C that Python discarded during the step

                def show(message: str):
                    bar.update(task, description=message)

                def step_starting(step: str):
                    where["current"] = step

                for claim in claims:
                    ctx = Context(profile=args.profile, seed=args.seed, out_dir=args.out, advance=show,
                                  archs=tuple(args.arch) if claim.uses_archs else ())
                    results.append(run_claim(claim, ctx, starting=step_starting, finished=step_finished))
                    claim_finished(results[-1])
    except (KeyboardInterrupt, WorkerStopped) as error:
        during = "; ".join(where.values()) or "starting"
        stopped = isinstance(error, WorkerStopped)
        ending, what = (RunFailed, str(error)) if stopped else (CommandInterrupted, f"interrupted during {during}")
        if not results:
            raise ending(f"{what}; no claim finished, no report written") from None
        # the finished claims are kept: a report marked incomplete, naming the claims not run
        finished_ids = {result.claim.id for result in results}
        results = [result for claim in claims for result in results if result.claim.id == claim.id]
        report = report_dict(results, profile=args.profile, seed=args.seed, archs=[a.spec for a in args.arch],
                             started=started, seconds=time.perf_counter() - start,
                             not_run=[claim.id for claim in claims if claim.id not in finished_ids],
                             interrupted_during=f"{during} (a worker process ended)" if stopped else during)
        json_path, md_path = write_report(args.out, report)
        finished = f"{counted(len(results), 'finished claim')} ({', '.join(result.claim.id for result in results)})"
        raise ending(f"{what}; the report of the {finished} is in {md_path} and {json_path}, marked incomplete") \
            from None
    console.print(summary_table(results))
    report = report_dict(results, profile=args.profile, seed=args.seed, archs=[a.spec for a in args.arch],
                         started=started, seconds=time.perf_counter() - start)
    json_path, md_path = write_report(args.out, report)
    failed = [r.claim.id for r in results if not r.passed]
    passed = f"{results[0].claim.id} passed" if len(results) == 1 else f"all {len(results)} claims passed"
    verdict = f"[red]FAILED: {', '.join(failed)}[/red]" if failed else f"[green]{passed}[/green]"
    console.print(f"{verdict} in {report['seconds']:.0f} s; report: {md_path} and {json_path}", soft_wrap=True)
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------------
# attack
# ---------------------------------------------------------------------------------------------------------

ATTACK_TRAINING_DEFAULTS = {"arch": "relu:2", "width": 1024, "training": "linearized", "train_steps": 20_000}
"""Defaults of the options that describe the network to train (they conflict with --model)."""
ATTACK_DATA_DEFAULTS = {"dataset": "digits-odd-even", "n": 20, "seed": 0}
"""--dataset, --n, --seed when not given; with a --model that records its training set, the recorded values."""
ATTACK_CHUNK = 100
"""Attack steps per jitted chunk: a checkpoint and a progress update after each (Ctrl-C waits for at most one);
fewer when steps are slow, so that a chunk takes about 10 s (numerics.attack.SLOW_ATTACK_WORK)."""
ATTACK_FILES = {"model": "model.npz", "train": "train_checkpoint.npz", "attack": "attack_checkpoint.npz"}
ATTACK_OUTPUTS = {"metrics": "metrics.json", "curve": "curve.png", "grid": "reconstructions.png"}
"""What an attack run writes at its end: removed with its other files when a run starts afresh in the folder."""


def _attack_arguments(parser: argparse.ArgumentParser) -> None:
    from numerics.audit import DATASETS

    parser.add_argument("--dataset", choices=list(DATASETS),
                        help="training set; with --model, the set the model was trained on (used for scoring) "
                             f"(default: {ATTACK_DATA_DEFAULTS['dataset']}, or what --model records)")
    parser.add_argument("--n", type=positive_int, help="number of training points "
                        f"(default: {ATTACK_DATA_DEFAULTS['n']}, or what --model records)")
    parser.add_argument("--arch", type=architecture, metavar="SPEC",
                        help=f"network to train (default: {ATTACK_TRAINING_DEFAULTS['arch']})")
    parser.add_argument("--width", type=positive_int, help=f"its hidden width (default: {ATTACK_TRAINING_DEFAULTS['width']})")
    parser.add_argument("--training", choices=("linearized", "standard"),
                        help=f"its training dynamics (default: {ATTACK_TRAINING_DEFAULTS['training']})")
    parser.add_argument("--train-steps", type=positive_int,
                        help=f"its training step budget (default: {ATTACK_TRAINING_DEFAULTS['train_steps']})")
    parser.add_argument("--model", type=saved_model, metavar="FILE.npz",
                        help="attack a saved model (numerics.training.save_model) instead of training one")
    parser.add_argument("--recon", type=positive_int, help="number of reconstructions M (default: 2N)")
    parser.add_argument("--steps", type=positive_int, default=10_000, help="attack steps (Adam)")
    parser.add_argument("--lr", type=positive_float, default=0.02, help="attack learning rate")
    parser.add_argument("--at", choices=("theta0", "thetaf", "both"), default="theta0",
                        help="parameters at which the attack takes gradients")
    parser.add_argument("--mode", choices=("joint", "profiled"), default="joint",
                        help="joint: Adam over reconstructions and coefficients; profiled: over reconstructions "
                             "alone, coefficients solved exactly at every step (fewer steps to the same quality)")
    parser.add_argument("--precision", choices=("float64", "float32"), default="float64",
                        help="arithmetic of the attack steps (the final losses are recomputed in float64; the "
                             "objective curve stays in this precision)")
    parser.add_argument("--rescale", action="store_true",
                        help="attack Delta theta / s with s = ||Delta theta|| / sqrt(M mean_x Theta_0(x, x)) over M "
                             "public points, so that the coefficients start at their scale (the same reconstructions "
                             "minimize both losses: lambda = s mu); for --mode joint, whose coefficients Adam moves "
                             "from a fixed start")
    parser.add_argument("--seed", type=seed, help="seed of the data draw, the network and the attack "
                        f"(default: {ATTACK_DATA_DEFAULTS['seed']}, or what --model records)")
    parser.add_argument("--attack-seed", type=seed, help="seed of the attack's random start alone, e.g. to attack "
                        "one --model from several starts (default: the --seed value)")
    parser.add_argument("--out", type=folder, default="reports/attack", help="run folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (same settings; a larger --steps extends the attack)")
    add_no_progress(parser)


def _attack_settings(args) -> dict[str, Any]:
    """What a resumed run must share with the run it continues (--steps and --train-steps are budgets)."""
    # --attack-seed only where it differs from --seed, and after it: a changed --seed is named first
    # the model first: a typed --width replaces a recorded --model, whose recorded data then differs from the defaults
    return ({"model": args.model_fingerprint, "dataset": args.dataset, "n": args.n, "seed": args.seed}
            | ({"attack_seed": args.attack_seed} if args.attack_seed != args.seed else {})
            | {"arch": args.arch.spec, "width": _recorded_width(args.arch, args.width),
               "training": args.training, "recon": args.recon, "lr": args.lr, "at": args.at, "mode": args.mode,
               "precision": args.precision}
            | ({"rescale": True} if args.rescale else {}))


def unused_width(width: int | None, archs) -> str | None:
    """The refusal of a given ``--width`` that sets no layer of any of ``archs`` (each Architecture's
    ``width_sets_layers``), or None."""
    if width is None or any(arch.width_sets_layers for arch in archs):
        return None
    fixed = "; ".join(f"{arch.spec} ({arch.fixed_size})" for arch in archs)
    return f"--width {width} sets no layer of {fixed}; drop --width"


def given_twice(option: str, values: list[str], consequence: str) -> str | None:
    """The refusal of a repeatable ``option`` given the same value twice (``values`` as the run records them: an
    architecture by its canonical spec, so relu:2 and dense > relu > dense > relu > dense are one), or None;
    ``consequence`` says what the repeat would do."""
    twice = next((value for i, value in enumerate(values) if value in values[:i]), None)
    return None if twice is None else f"{option} {twice} is given twice ({consequence})"


def _recorded_width(arch, width: int | None) -> int | None:
    """The width a run records and a resume must match: None where it sets no layer (any width, the same network)."""
    return width if arch.width_sets_layers else None


def _recorded_training_data(args) -> None:
    """--dataset, --n, --seed for a --model: the values the file records where not given, and a one-line refusal
    where a given one differs (the scores would compare with points the network never saw); then the defaults.
    A model file that is one of the run's own files in --out (ATTACK_FILES) is refused too: starting the run
    afresh would replace it; other files there are left alone."""
    recorded = args.model.training_data
    if recorded is not None:
        stated = {name: getattr(args, name) for name in ATTACK_DATA_DEFAULTS}
        differing = [name for name, value in zip(ATTACK_DATA_DEFAULTS, recorded)
                     if stated[name] is not None and stated[name] != value]
        if differing:
            name, n, seed = recorded
            shown = " ".join(f"{_option(key)} {stated[key]}" for key in differing)
            raise UsageError(f"--model was trained on {name}, N = {n}, seed {seed} (recorded in the file), but "
                             f"{shown} would score the attack against other points; drop {'them' if len(differing) > 1 else 'it'} "
                             "or pass the recorded values")
        for name, value in zip(ATTACK_DATA_DEFAULTS, recorded):
            setattr(args, name, value)
    source = getattr(args.model, "source", None)
    if source is not None and args.out.is_dir() and any(
            (args.out / name).exists() and (args.out / name).resolve() == source.resolve() for name in ATTACK_FILES.values()):
        if args.resume:  # resuming already reuses the folder's model; --model would only compare it with itself
            raise UsageError(f"--model {source} is the run folder's own model: drop --model, --resume reuses it")
        raise UsageError(f"--model {source} is a file of the run folder --out {args.out}, which this run would "
                         "replace; choose another --out")


def _fill_data_defaults(args) -> None:
    args.data_defaulted = [name for name in ATTACK_DATA_DEFAULTS if getattr(args, name) is None]
    for name in args.data_defaulted:
        setattr(args, name, ATTACK_DATA_DEFAULTS[name])


def _shown_attack_setting(name: str, value: Any, args=None) -> Any:
    """How an attack setting is written in a resume refusal: the model by its fingerprint (None: a model trained in
    the run folder), and by its file where it is this command's --model (``args``) or the file the run records
    (its run.json's options); the attack seed None when it follows --seed."""
    if name == "model":
        given = None if args is None else args.model
        if value is None:  # the two differ, so the other one is a --model file, or none is given now
            return "a model trained here" if given is not None else "not given (a model trained here)"
        if given is not None and value == args.model_fingerprint:
            return f"{getattr(given, 'source', None) or 'the --model file'} (fingerprint {value})"
        recorded = ((getattr(args, "previous", None) or {}).get("options") or {}).get("model")
        if isinstance(recorded, list) and len(recorded) == 1 and str(recorded[0]).startswith("--model="):
            return f"{recorded[0].removeprefix('--model=')} (fingerprint {value})"
        return f"another model (fingerprint {value})"
    if name == "attack_seed" and value is None:
        return "the --seed value"
    if name == "rescale":
        return "on" if value else "off"
    return value


def _check_attack(args) -> None:
    from numerics import audit
    from numerics.attack import check_parameter_change, check_recon_count
    from numerics.checkpoint import Checkpoint, CheckpointError, fingerprint

    given = [name for name in ATTACK_TRAINING_DEFAULTS if getattr(args, name) is not None]
    if args.model is not None:
        if given:
            raise UsageError(f"{', '.join(map(_option, given))} {'describe' if len(given) > 1 else 'describes'} a network "
                             "to train; with --model the file "
                             "describes the network")
        model = args.model
        try:
            check_parameter_change(model.params_0, model.params_f)
        except ValueError as error:
            raise UsageError(f"--model {model.source}: {error}") from None
        args.arch, args.width, args.training, args.train_steps = model.arch, model.width, None, None
        args.model_fingerprint = fingerprint(model.params_0, model.params_f)
        _recorded_training_data(args)
    else:
        unused = None if args.arch is None else unused_width(args.width, [args.arch])
        if unused is not None:
            raise UsageError(unused)
        for name, default in ATTACK_TRAINING_DEFAULTS.items():
            if getattr(args, name) is None:
                setattr(args, name, parse_spec(default) if name == "arch" else default)
        args.model_fingerprint = None
    _fill_data_defaults(args)
    if args.attack_seed is None:
        args.attack_seed = args.seed
    if args.mode == "profiled" and not args.arch.is_mlp:
        raise UsageError(f"--mode profiled needs the layer-by-layer NTK of a plain fully connected network (dense "
                         f"and activation layers only, no residual blocks or convolutions), not {args.arch.spec}; "
                         "use --mode joint")
    if args.rescale and args.mode == "profiled":
        raise UsageError("--rescale sets the scale of the coefficients that --mode joint moves by Adam; --mode "
                         "profiled solves them exactly at every step, so the scale changes nothing: drop --rescale")
    try:
        audit.check_n(args.dataset, args.n)
    except ValueError as error:
        raise UsageError(str(error)) from None
    recon_given, args.recon = args.recon is not None, args.recon or 2 * args.n
    try:
        check_recon_count(args.recon, "--recon" if recon_given else "--recon (2 N by default)")
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        args.arch.check_input(audit.input_dimension(args.dataset))
    except ValueError as error:
        raise UsageError(f"--arch {error} (--dataset {args.dataset})") from None
    if args.model is None:
        from numerics.networks import check_network_size

        try:
            check_network_size(args.arch, args.width, audit.input_dimension(args.dataset),
                               audit.output_dimension(args.dataset))
        except ValueError as error:
            raise UsageError(str(error)) from None
    if args.model is not None:
        try:
            audit.check_fits(args.dataset, args.model.in_dim, args.model.out_dim)
        except ValueError as error:
            raise UsageError(f"{error} (--model)") from None

    args.previous = None
    out = args.out
    try:
        args.previous = earlier_run(out, "attack", "an attack", resume=args.resume)
        if not args.resume or args.previous is None:
            return
        stored = dict(args.previous["settings"])
        if "width" in stored:  # run folders written before widths that set no layer were recorded as None
            stored["width"] = _recorded_width(args.arch, stored["width"])
        check_resumed_settings(stored, _attack_settings(args), out, functools.partial(_shown_attack_setting, args=args),
                               typed=getattr(args, "typed", None), never_default=("model",),
                               options_recorded="options" in args.previous)
        training = args.previous.get("training")
        if training is not None and args.model is None and training["stop_reason"] == "budget" \
                and args.train_steps != training["budget"]:
            raise UsageError(f"--train-steps is {args.train_steps} but the model in {out} was trained with "
                             f"{training['budget']} (it stopped at that budget); resume with the same --train-steps")
        train_checkpoint = out / ATTACK_FILES["train"]
        if training is None and args.model is None and train_checkpoint.is_file():
            step = Checkpoint(train_checkpoint, kind="train").peek()[0]
            if args.train_steps < step:
                raise UsageError(f"training in {out} is already at step {step}; --train-steps {args.train_steps} "
                                 f"is below it (resume with --train-steps {step} or more, or drop --resume to start "
                                 "afresh)")
        attack_checkpoint = out / ATTACK_FILES["attack"]
        if attack_checkpoint.is_file():
            step = Checkpoint(attack_checkpoint, kind="attack").peek()[0]
            if args.steps < step:
                raise UsageError(f"the attack in {out} is already at step {step}; --steps {args.steps} is below it "
                                 f"(resume with --steps {step} or more, or drop --resume to start afresh)")

    except CheckpointError as error:
        raise UsageError(str(error)) from None


def _attack(args) -> int:
    import numerics  # noqa: F401  (float64 on)
    import jax
    import numpy as np
    from rich.markup import escape

    from numerics import audit, privacy
    from numerics.attack import attack_divergence, parameter_space_attack
    from numerics.checkpoint import Checkpoint, write_run
    from numerics.training import load_model
    from proofs_check import figures

    console = command_console()
    out = args.out
    paths = {key: out / name for key, name in ATTACK_FILES.items()}
    resuming = start_or_resume(console, out, [*paths.values(), *(out / name for name in ATTACK_OUTPUTS.values())],
                               resume=args.resume, previous=args.previous)
    record = {"command": "attack", "settings": _attack_settings(args), "options": args.recorded_options,
              "steps": args.steps, "train_steps": args.train_steps, "training": args.previous.get("training") if resuming else None}
    write_run(out, record)

    dataset = audit.load_dataset(args.dataset, args.n, seed=args.seed)
    info: dict[str, Any] = {"dataset": dataset.name, "n": args.n, "seed": args.seed, "attack_seed": args.attack_seed}
    if args.model is not None:
        arch, width, params_0, params_f = args.model.arch, args.model.width, args.model.params_0, args.model.params_f
        info["model"] = str(getattr(args.model, "source", None) or "given with --model")
        info["training_data_recorded"] = args.model.training_data is not None
        if args.model.training_data is None:  # older or hand-made files: the scores trust the command line
            source = getattr(args.model, "source", None) or "the --model file"
            defaulted = [_option(name) for name in getattr(args, "data_defaulted", [])]
            given = (f"{' and '.join(defaulted)} not given: their defaults" if defaulted
                     else "from --dataset, --n and --seed")
            console.print(f"note: {escape(str(source))} records no training data; scoring against "
                          f"{escape(dataset.name)} ({given}); the scores read low if the model was trained on "
                          "other points", soft_wrap=True)
        else:  # the file names its training set: does the network fit it there?
            fit = info["fit_on_recorded_set"] = audit.fit_on(arch, width, params_0, params_f, dataset)
            if not fit["fits"]:
                console.print(f"note: the model does not fit the training set its file records ({escape(dataset.name)}): "
                              f"||f(X) - Y||^2 / ||Y||^2 = {fit['network']:.3g} by the network, {fit['linearized']:.3g} "
                              f"linearized (a fitted one is below {audit.FIT_FRACTION:g}); it was trained on other "
                              "points (numerics.audit.load_dataset gives the recorded ones: centred pixels / 16) or "
                              "not to convergence, and its scores read low", soft_wrap=True)
    elif resuming and record["training"] is not None and paths["model"].is_file():
        saved = load_model(paths["model"])
        arch, width, params_0, params_f = saved.arch, saved.width, saved.params_0, saved.params_f
        console.print(f"resuming {out}: using the model trained there ({paths['model']}), not retraining it")
        info["model"] = str(paths["model"])
        info["training"] = record["training"]
    else:
        arch, width = args.arch, args.width
        if resuming and paths["train"].is_file():
            store = Checkpoint(paths["train"], kind="train")
            step, met = store.peek()[0], store.peek_extra("met_target")
            if met is not None and met.shape == () and met.dtype == bool and bool(met):  # Ctrl-C came after
                # training had ended and before the model was saved
                console.print(f"resuming {out}: training met its loss target at step {step} (its checkpoint); "
                              "nothing left to train")
            else:
                console.print(f"resuming {out}: training from step {step} of {args.train_steps}")
        else:
            console.print(f"training {arch.named(width)} ({args.training}) on {dataset.name}, N = {args.n}")
        trained = audit.train_on(arch, width, dataset, linearized=args.training == "linearized", seed=args.seed,
                                 max_steps=args.train_steps, progress=not args.no_progress,
                                 checkpoint=paths["train"], resume=args.resume)
        params_0, params_f = trained.params_0, trained.params_f
        info["model"] = str(trained.save(paths["model"], training_data=(args.dataset, args.n, args.seed)))
        info["training"] = record["training"] = {
            "mode": args.training, "steps": trained.steps, "budget": args.train_steps,
            "final_train_loss": trained.final_loss, "stop_reason": trained.stop_reason,
            "resumed_from": trained.resumed_from, "seconds": round(trained.seconds, 1)}
        write_run(out, record)
        if trained.stop_reason != "threshold":  # the attack reads Delta theta of a trained network: say it is not
            console.print(f"note: training stopped ({trained.stop_reason}) at step {trained.steps} with loss "
                          f"{trained.final_loss:.3g}, above its target {audit.TRAIN_LOSS_TARGET:g}; the attack runs "
                          "on this network as it is (raise --train-steps to train further)")

    references = audit.reference_sets(args.dataset, dataset, seed=args.seed)
    scale = 1.0
    if args.rescale:
        scale = audit.coefficient_scale(arch, width, audit.output_dimension(args.dataset), params_0, params_f,
                                        references.public[:args.recon])
        console.print(f"--rescale: attacking Delta theta / {scale:.4g} (its coefficients mu = lambda / {scale:.4g} "
                      "start at their scale)")
    info["delta_scale"] = scale
    if resuming and paths["attack"].is_file():
        step = Checkpoint(paths["attack"], kind="attack").peek()[0]
        console.print(f"resuming {out}: the attack from step {step} of {args.steps}")
    console.print(f"attacking {arch.named(width)} with M = {args.recon} reconstructions, {args.steps} steps")
    result = parameter_space_attack(arch, params_0, params_f, args.recon, in_dim=dataset.d, delta_scale=scale,
                                    key=jax.random.PRNGKey(args.attack_seed + 1), steps=args.steps, lr=args.lr, at=args.at,
                                    box=dataset.box, checkpoint=paths["attack"], resume=args.resume,
                                    progress=not args.no_progress, chunk=ATTACK_CHUNK, mode=args.mode,
                                    precision=args.precision)

    diverged = attack_divergence(result)
    if diverged:
        raise RunFailed(f"the attack diverged: {diverged}; rerun without --resume and a smaller --lr (now {args.lr:g})")
    if result.info["anneal_steps"] > result.steps:  # resumed with a --steps below the run's first budget
        beta = result.info["final_beta"]
        console.print(f"note: this run's schedules (softplus sharpness, step size) span its first budget of "
                      f"{result.info['anneal_steps']} steps; stopped at {result.steps}, it is scored mid-schedule"
                      + (f" (softplus sharpness {beta:.3g} at its last step)" if beta is not None else "")
                      + f"; --resume --steps {result.info['anneal_steps']} completes it", soft_wrap=True)
    # the loss sums ||Delta theta - J(X_R)^T lambda||^2 over the parameter sets of --at (two for both)
    relative_loss = result.info["loss_unsmoothed"] / (result.info["parameter_sets"] * result.info["delta_theta_sqnorm"])
    console.print(f"attack loss {relative_loss:.3g} of ||Delta theta||^2 after {result.steps} steps (exact activation; "
                  "0 when the reconstructions explain all of the parameter change, 1 for lambda = 0; a larger --steps "
                  "with --resume continues this run)", soft_wrap=True)
    if not relative_loss < 1:  # nan included
        remedies = ["a larger --steps"]
        if args.mode == "joint":
            remedies = (["--mode profiled"] if arch.is_mlp else []) + remedies + ([] if args.rescale else ["--rescale"])
        console.print(f"note: the attack's loss ({relative_loss:.3g}) is not below lambda = 0's (1): its reconstructions "
                      "explain none of the parameter change, so the scores below say nothing about this model's "
                      "leakage (an attack that did not fit, not a model that does not leak); try "
                      + (f"{', '.join(remedies[:-1])} or " if len(remedies) > 1 else "") + remedies[-1], soft_wrap=True)
    leakage = audit.leakage(result.x_recon, dataset, references, seed=args.seed)
    label = f"{arch.named(width, short=True)}, N={args.n}, M={args.recon}, {args.steps} steps"
    files = [figures.leakage_figure(out / ATTACK_OUTPUTS["curve"], leakage.curves(), factor=leakage.factor,
                                    ssim_thresholds=privacy.SSIM_THRESHOLDS if dataset.image_shape else (),
                                    title=f"attack vs trivial baselines: {label}")]
    if dataset.image_shape is not None:
        files.append(figures.matched_reconstruction_grid(out / ATTACK_OUTPUTS["grid"], result.x_recon, dataset, label,
                                                       leakage=leakage))
    metrics = {
        **info, "arch": arch.spec, "width": width, "n_recon": args.recon,
        "success_measure": (f"a private point is revealed when some reconstruction is {leakage.factor:g} times closer "
                            "to it than to every point of the public set (numerics.privacy.revealed)"),
        "revealed": leakage.rows[audit.ATTACK_ROW]["revealed"],
        "attack_fitted": bool(relative_loss < 1),
        "leakage": leakage.rows,
        "attack": {"steps": result.steps, "resumed_from": result.info["resumed_from"], "lr": args.lr, "at": args.at,
                   "mode": args.mode, "method": result.info["method"], "precision": args.precision,
                   "objective": result.info["final_objective"], "objective_at_start": float(result.loss_curve[0]),
                   "objective_start_end_at_final_beta": list(result.info["objective_start_end_at_final_beta"]),
                   "loss": result.final_loss,
                   "loss_unsmoothed": result.info["loss_unsmoothed"], "loss_relative": relative_loss,
                   "final_beta": result.info["final_beta"],
                   "anneal_steps": result.info["anneal_steps"]},
        "quantities": {"attack_fitted": "attack.loss_relative < 1: the reconstructions explain some of the parameter "
                                        "change (at 1 or above the scores say nothing about the model's leakage)",
                       "attack.objective": "the progress bar's 'objective' at the last step: smoothed attack loss "
                                           "plus the box penalty",
                       "attack.objective_at_start": "the progress bar's 'objective' at the first step (at the first "
                                                    "softplus sharpness)",
                       "attack.objective_start_end_at_final_beta": "the objective at the run's first and last state, "
                                                                   "both at the final softplus sharpness, in float64 "
                                                                   "(the divergence rule compares them)",
                       "attack.loss": "attack loss at the final softplus sharpness, without the box penalty",
                       "attack.loss_unsmoothed": "attack loss with the exact activation",
                       "attack.loss_relative": "attack.loss_unsmoothed / (||theta_f - theta_0||^2 times the "
                                               "parameter sets of --at, two for both): 0 when the reconstructions "
                                               "explain all of the parameter change, 1 for lambda = 0",
                       "training.final_train_loss": "the progress bar's 'train loss' after the last step"},
    }
    files.append(audit.write_metrics(out / ATTACK_OUTPUTS["metrics"], metrics))
    if paths["model"].is_file():
        files.append(paths["model"])
    console.print(_leakage_table(leakage, dataset.image_shape is not None))
    console.print(f"files: {', '.join(str(f) for f in files)}")
    return 0


def start_or_resume(console, out: Path, files, *, resume: bool, previous: dict | None) -> bool:
    """Whether a run folder's earlier run is continued: with ``--resume`` and an earlier run, yes; otherwise the
    earlier run's ``files`` are removed (said on the console) and the run starts afresh."""
    if resume and previous is not None:
        return True
    if previous is not None:
        console.print(f"starting afresh in {out} (the earlier run there is replaced; --resume would continue it)")
        for path in files:
            path.unlink(missing_ok=True)
    return False


def _leakage_table(leakage, images: bool):
    from rich.table import Table

    table = Table(title=f"revealed private points (closer by a factor {leakage.factor:g} than to every public point)")
    table.add_column("reconstructions")
    table.add_column("revealed", justify="right")
    if images:
        table.add_column("SSIM >= 0.4", justify="right")
        table.add_column("SSIM >= 0.9", justify="right")
    for name, row in leakage.rows.items():
        cells = [f"{name} (trivial)" if row["trivial"] else f"[bold]{name}[/bold]",
                 f"{row['revealed']:.0%} ({row['revealed_count']})"]
        if images:
            cells += [f"{row['ssim_ge_0.4']:.0%}", f"{row['ssim_ge_0.9']:.0%}"]
        table.add_row(*cells)
    return table


# ---------------------------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------------------------

def _int_list(text: str) -> tuple[int, ...]:
    """Comma-separated positive integers, e.g. 16,64,256."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give comma-separated positive integers, e.g. 16,64,256")
    values = []
    for part in text.split(","):
        try:
            values.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} in {text!r} is not an integer") from None
        if values[-1] > MAX_COUNT:
            raise argparse.ArgumentTypeError(f"{part.strip()} in {text!r} is too large: at most {MAX_COUNT}")
        if values[-1] < 1:
            raise argparse.ArgumentTypeError(f"{part!r} in {text!r} is not a positive integer") from None
    return distinct(tuple(values), text)


def distinct(values: tuple, text: str) -> tuple:
    """``values`` (parsed from the comma-separated ``text``) when no value comes twice: a repeated value would only
    repeat work."""
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} lists a value twice")
    return values


def _name_list(choices: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(part for part in text.split(","))
        unknown = [v for v in values if v not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown[0]!r}; choose from {', '.join(choices)}")
        return distinct(values, text)

    return parse


SWEEP_DEFAULTS = {"datasets": "digits-odd-even,sphere", "widths": "16,64,256", "ns": "10,40",
                  "params": "ntk,standard", "trainings": "linearized,standard", "seeds": 5,
                  "train_steps": 3000, "attack_steps": 1000}
"""The README grid (the full sweep behind its figures): ``proofs-check sweep`` with no grid options."""


def _sweep_arguments(parser: argparse.ArgumentParser) -> None:
    from numerics import sweep

    parser.add_argument("--datasets", type=_name_list(sweep.DATASETS), default=SWEEP_DEFAULTS["datasets"],
                        help="comma-separated datasets")
    parser.add_argument("--widths", type=_int_list, default=SWEEP_DEFAULTS["widths"], help="comma-separated widths")
    parser.add_argument("--ns", type=_int_list, default=SWEEP_DEFAULTS["ns"],
                        help="comma-separated training-set sizes N")
    parser.add_argument("--params", type=_name_list(sweep.PARAMETRIZATIONS), default=SWEEP_DEFAULTS["params"],
                        help="comma-separated parametrizations")
    parser.add_argument("--trainings", type=_name_list(sweep.TRAININGS), default=SWEEP_DEFAULTS["trainings"],
                        help="comma-separated training modes")
    parser.add_argument("--seeds", type=positive_int, default=SWEEP_DEFAULTS["seeds"],
                        help="seeds per cell (0, 1, ...)")
    parser.add_argument("--train-steps", type=positive_int, default=SWEEP_DEFAULTS["train_steps"],
                        help="training step budget per cell")
    parser.add_argument("--attack-steps", type=positive_int, default=SWEEP_DEFAULTS["attack_steps"],
                        help="attack steps per cell")
    parser.add_argument("--out", type=folder, default="reports/sweep",
                        help="sweep folder (cells/ cache, results.csv, results.json, figures); rerunning resumes")
    parser.add_argument("--seed", type=seed, default=0,
                        help="seed of the trends' bootstrap resamples (the cells' own seeds are 0, 1, ... by --seeds)")
    parser.add_argument("--recompute-other-code", action="store_true",
                        help="compute again the stored cells that other code computed (another version of numerics/ or "
                             "theory/, or cells that predate the record); by default they are reused, with a note")
    add_no_progress(parser)  # its progress is a line per cell: --no-progress drops the line's estimate of the time left


def _check_sweep(args) -> None:
    from numerics import sweep

    from numerics.audit import check_n, input_dimension
    from numerics.networks import check_network_size

    def listed(value):  # argparse does not pass string defaults through ``type`` when they are not strings
        return value if isinstance(value, tuple) else None

    try:
        sweep.check_cell_count(*(len(listed(value) or value.split(",")) for value in (
            args.datasets, args.widths, args.ns, args.params, args.trainings)), args.seeds)
        datasets = listed(args.datasets) or _name_list(sweep.DATASETS)(args.datasets)
        widths = listed(args.widths) or _int_list(args.widths)
        ns = listed(args.ns) or _int_list(args.ns)
        for dataset in datasets:  # each value named as the option gives it, before the grid checks them again
            for n in ns:
                check_n(dataset, n, label="--ns value", rule_subject="every --ns value")
            for width in widths:
                check_network_size(parse_spec(f"relu:{sweep.DEPTH}"), width, input_dimension(dataset),
                                   option="--widths value")
        args.grid = sweep.Grid(datasets=datasets, widths=widths, ns=ns,
                               params=listed(args.params) or _name_list(sweep.PARAMETRIZATIONS)(args.params),
                               trainings=listed(args.trainings) or _name_list(sweep.TRAININGS)(args.trainings),
                               seeds=tuple(range(args.seeds)))
    except (ValueError, argparse.ArgumentTypeError) as error:
        raise UsageError(str(error)) from None
    args.budget = sweep.Budget(train_steps=args.train_steps, attack_steps=args.attack_steps)


def _sweep(args) -> int:
    import numerics  # noqa: F401  (float64 on)
    import numpy as np

    from numerics import sweep

    console = command_console()
    try:
        result = sweep.run_sweep(args.grid, args.budget, args.out, report=console.print,
                                 reuse_other_code=not args.recompute_other_code, estimate=not args.no_progress)
    except KeyboardInterrupt:
        stored = [sweep.load_cell(args.out, cell, args.budget) for cell in args.grid.cells()]
        done = sum(row is not None and not (args.recompute_other_code and sweep.from_other_code([row]))
                   for row in stored)
        raise CommandInterrupted(f"interrupted with {done} of {len(args.grid.cells())} cells done (kept in "
                                 f"{args.out / 'cells'}); rerun the same command to resume") from None
    all_rows = result.rows
    rows = sweep.usable(all_rows)
    diverged = sum(r.get("train_stop") == "diverged" for r in all_rows)
    unfitted = len(all_rows) - len(rows) - diverged
    if not rows:
        raise RunFailed("no cell's network fitted its training set (each diverged or stopped above "
                        f"{sweep.FIT_FRACTION:g} of the zero function's loss): nothing to score; at small widths with "
                        "standard training every ReLU can die: widen the networks, or raise --train-steps")
    figures_dir = args.out / "figures"
    files = [sweep.success_vs_width_figure(figures_dir / f"success_vs_width_{d}.png", rows, d)
             for d in args.grid.datasets]
    trends, rng = {}, np.random.default_rng(args.seed)
    # below TREND_MIN_SEEDS seeds per cell the value alone: a percentile interval over so few seeds undercovers
    intervals = len(args.grid.seeds) >= sweep.TREND_MIN_SEEDS
    for dataset in args.grid.datasets:
        chosen = [r for r in rows if r["dataset"] == dataset]
        if len(args.grid.seeds) >= 2 or len(chosen) >= 4:
            try:
                found = sweep.trends(chosen, rng=rng, n_boot=sweep.TREND_REPLICATES if intervals else 1)
                trends[dataset] = {k: t.as_dict() if intervals else
                                   {**t.as_dict(), "low": None, "high": None, "dropped": None,
                                    "no interval": f"fewer than {sweep.TREND_MIN_SEEDS} seeds per cell"}
                                   for k, t in found.items()}
            except ValueError:
                pass
        for param in args.grid.params:
            files.append(sweep.heatmap_figure(figures_dir / f"heatmap_{dataset}_{param}.png", rows, dataset, param))
    rho = sweep.spearman_trend(rows, "kernel_distance", rng=rng, n_boot=1).value if len(rows) >= 3 else None
    files.append(sweep.success_vs_kernel_distance_figure(figures_dir / "success_vs_kernel_distance.png", rows, rho))
    boundary = sweep.regime_boundary(rows)
    from numerics.checkpoint import software

    summary = {"software": software(), "grid": {k: list(v) for k, v in dataclasses.asdict(args.grid).items()},
               "budget": args.budget.as_dict(), "cells": len(rows), "computed": result.computed,
               "reused": result.reused, "reused_from_other_code": result.reused_from_other_code,
               "seconds": result.seconds, "diverged": diverged,
               "did_not_fit": unfitted, "trends": trends,
               "boundary": {" ".join(k): {"failing (width, N)": v["failing"],
                                          "min width reaching 50% per N": v["min_width"]}
                            for k, v in boundary.items()}}
    import json

    (args.out / "summary.json").write_text(json.dumps(sweep._plain(summary), indent=1))
    console.print(_sweep_table(rows))
    if diverged:
        console.print(f"{diverged} cell(s) diverged in training (train_stop = diverged in {result.csv_path}); "
                      "they are left out of the table, the trends and the figures")
    if unfitted:
        console.print(f"{unfitted} cell(s) did not fit their training set (train_loss in {result.csv_path} above "
                      f"{sweep.FIT_FRACTION:g} of the zero function's loss: no trained network to attack); they are "
                      "left out of the table, the trends and the figures")
    for (dataset, param, training), entry in boundary.items():
        console.print(f"{dataset} {param} {training}: {_boundary_text(entry)}")
    console.print(f"{result.computed} cells computed, {result.reused} reused, in {result.seconds:.0f} s; files: "
                  f"{result.csv_path}, {result.json_path}, {args.out / 'summary.json'}, {figures_dir}/")
    return 0


def _boundary_text(entry: dict) -> str:
    """Where the attack fails in one (dataset, param, training) group (an entry of numerics.sweep.regime_boundary)."""
    if not entry["failing"]:
        return "revealed < 50% in no cell"
    return "revealed < 50% at " + ", ".join(f"m={w} N={n}" for w, n in entry["failing"])


SWEEP_TABLE_WIDTH = 120
"""Below this many columns the sweep's table puts each cell's settings and movement measures in words in one cell:
its nine columns take 114 with digits rows, and narrower rich shrinks them by folding words and numbers (at 100
"digits-odd-e|ven", at 80 "1.62e-1|5", at 60 "digi|ts-o|dd-e|ven")."""


def _sweep_table(rows):
    """The sweep's table: a column per setting and measure, or (below SWEEP_TABLE_WIDTH columns) three."""
    from proofs_check.report import ByWidth

    return ByWidth(lambda: _sweep_columns(rows, stacked=False), lambda: _sweep_columns(rows, stacked=True),
                   below=SWEEP_TABLE_WIDTH)


def _sweep_columns(rows, *, stacked: bool):
    from rich.table import Table

    from numerics import sweep

    table = Table(title="revealed fraction, mean over seeds (trivial baselines: best shown)")
    columns = ("dataset", "m", "N", "param", "training", "revealed", "best trivial", "kernel distance", "span residual")
    for column in (("cell", "revealed", "best trivial") if stacked else columns):
        table.add_column(column, overflow="fold")  # a narrow terminal folds a number, never cuts it ("1.83e-...")
    means = sweep.mean_over_seeds(rows)
    trivial = sweep.mean_over_seeds(rows, "best_trivial_revealed")
    distance = sweep.mean_over_seeds(rows, "kernel_distance")
    residual = sweep.mean_over_seeds(rows, "span_residual")
    for key in means:
        dataset, width, n, param, training = key
        scores = (f"{means[key]:.0%}", f"{trivial[key]:.0%}")
        if stacked:
            table.add_row(f"{dataset} m={width} N={n} {param} {training}\nkernel distance {distance[key]:.2e}, "
                          f"span residual {residual[key]:.2e}", *scores)
        else:
            table.add_row(dataset, str(width), str(n), param, training, *scores, f"{distance[key]:.2e}",
                          f"{residual[key]:.2e}")
    return table


from proofs_check import attack_curve, distill_cli  # noqa: E402  (their functions import this module lazily)

COMMANDS: tuple[Command, ...] = (
    Command("list", "list the registered claims", _list_arguments, _list_claims),
    Command("run", "run claims and write the report", _run_arguments, _run, check=_check_run, outputs=("out",),
            epilog=architecture_help()),
    Command("attack", "train (or load) a network, reconstruct its training set, score it beside trivial baselines",
            _attack_arguments, _attack, check=_check_attack, outputs=("out",), epilog=architecture_help(),
            interrupted=_attack_interrupted, alternatives=(("model",), tuple(ATTACK_TRAINING_DEFAULTS))),
    Command("attack-curve", "the attack's success against its step budget for several architectures (e.g. an MLP "
            "and a convolutional net) and training modes, beside trivial baselines", attack_curve.add_arguments,
            attack_curve.run, check=attack_curve.check, outputs=("out",), epilog=architecture_help(),
            interrupted=attack_curve.interrupted, alternatives=(("combine",), attack_curve.RUN_OPTIONS)),
    Command("sweep", "finite-width sweep: train, measure the kernel's movement, attack and score every cell of a grid "
            "(cached per cell: rerunning resumes)", _sweep_arguments, _sweep, check=_check_sweep, outputs=("out",)),
    Command("distill", "distill a dataset into a few points per class (KIP or RKIP with the NTK; optionally early "
            "stopping on a validation split of the training data), score it by test accuracy beside baselines", distill_cli.add_arguments, distill_cli.run, check=distill_cli.check,
            outputs=("out",), epilog=architecture_help(), interrupted=distill_cli.interrupted),
    Command("defend", "distillation as a defense: attack a kernel-regime model trained on private digits and models "
            "trained on distilled sets, write the revealed-vs-accuracy trade-off", distill_cli.defend_arguments,
            distill_cli.defend, check=distill_cli.defend_check, outputs=("out",), epilog=architecture_help(),
            interrupted=distill_cli.defend_interrupted),
    Command("rkip-finite", "RKIP-finite: the attack with M < N reconstructions as distillation of a finite network "
            "(digits, odd vs even), scored by the test accuracy of fresh networks and kernel regression trained on "
            "them beside the N originals (each stage saved: --resume continues)", distill_cli.rkip_finite_arguments,
            distill_cli.rkip_finite_run, check=distill_cli.rkip_finite_check, outputs=("out",),
            epilog=architecture_help(), interrupted=distill_cli.rkip_finite_interrupted),
)


if __name__ == "__main__":  # run as proofs_check.cli, not __main__: a second copy's UsageError was not recognized
    from proofs_check.launcher import main as program

    program()
