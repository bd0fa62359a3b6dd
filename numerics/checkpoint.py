"""Checkpoints, resumption and safe interruption of long loops: training, the attack, and later distillation
and sweeps all use this one module.

A long loop runs in jitted chunks. After each chunk it saves its state with :meth:`Checkpoint.save`
(written to a temporary file and renamed, so a crash or a second Ctrl-C never leaves a torn file);
on ``resume`` it reads it back with :meth:`Checkpoint.load`, which refuses a checkpoint written with
other *settings* (naming the first one that differs) and checks every array against a template of the
state. The step *budget* is not a setting: a larger budget extends a run, a budget below the step
already reached is refused. Inside :func:`interruptible` the first Ctrl-C only raises a flag; the loop
finishes its chunk, saves, and :meth:`StopFlag.check` raises :class:`Interrupted` (a KeyboardInterrupt
carrying the step), so the checkpoint on disk always holds the last completed chunk. A second Ctrl-C
interrupts at once (the checkpoint of the previous chunk stays intact). A command (the ``proofs-check`` CLI)
wraps its whole run in :func:`recording_interrupts`: outside the loops a Ctrl-C raises KeyboardInterrupt as
usual but is also *recorded*, because Python discards a KeyboardInterrupt raised inside a garbage-collection
callback or a ``__del__`` (JAX runs one at every collection) and the run would go on. A recorded Ctrl-C stops
the next :func:`interruptible` loop after its first chunk (once saved), :func:`raise_if_interrupted` stops a
long phase between its units of work, and the command ends interrupted rather than successful
(:meth:`InterruptRequests.finish`). A command that owns a run folder
records its settings in ``run.json`` (:func:`write_run`, :func:`read_run`), so that a resumption can be
checked against them before any work starts.

Files are ``.npz`` archives of plain arrays (read with ``allow_pickle=False``): ``state_<i>`` (the
leaves of the state pytree), ``extra_<name>`` (e.g. the loss history), ``step``, ``budget``, ``kind``,
``format_version`` and ``settings`` (a JSON string).

Example (the loop of :func:`numerics.training.train` in miniature)::

    store = Checkpoint("run/train_checkpoint.npz", kind="train", settings={"learning_rate": 0.1})
    state, step = init_state, 0
    if resume and store.exists():
        saved = store.load(template=init_state, budget=max_steps)
        state, step = saved.state, saved.step
    with interruptible() as stop:
        while step < max_steps:
            state = run_chunk(state)
            step += chunk
            store.save(state, step=step, budget=max_steps)
            stop.check(step, total=max_steps, what="training", path=store.path)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import signal
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import jax
import numpy as np

from proofs_check.launcher import (InterruptRequests, counting_interrupts,  # the program's Ctrl-C recorder
                                   ending_on_a_stuck_press)

FORMAT_VERSION = 1
MAX_SCALAR_BYTES = 1 << 16
"""Largest single value (e.g. a spec or settings string) that :func:`read_npz` accepts."""


class FileError(ValueError):
    """A file that cannot be used (missing, not an .npz, from another program, wrong arrays); one line."""


class CheckpointError(FileError):
    """A checkpoint that cannot be resumed."""


class SettingsMismatch(CheckpointError):
    """Resuming with a setting that changes the optimization; ``setting`` names it."""

    def __init__(self, path: Path, setting: str, stored: Any, current: Any):
        self.path, self.setting, self.stored, self.current = Path(path), setting, stored, current
        super().__init__(f"{path} was written with {setting}={_show(stored)}, this run has {setting}={_show(current)}; "
                         "resume with the same settings or start afresh")


class BudgetTooSmall(CheckpointError):
    """Resuming with a step budget below the step the checkpoint already reached."""

    def __init__(self, path: Path, step: int, budget: int):
        self.path, self.step, self.budget = Path(path), step, budget
        super().__init__(f"{path} is already at step {step}, beyond the budget of {budget} steps; "
                         f"pass a budget of at least {step} to resume it")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a loop after its checkpoint was saved: ``step`` of ``total`` steps are done."""

    def __init__(self, step: int, total: int | None = None, what: str = "the loop", path: Path | None = None):
        self.step, self.total, self.what, self.path = step, total, what, path
        where = f"; {path} holds it" if path is not None else ""
        super().__init__(f"{what} interrupted at step {step}{where}")


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _normalize(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as JSON would give them back (tuples -> lists, numpy scalars -> Python), so that a setting
    compares equal to itself after a save and a load."""
    def convert(value):
        if isinstance(value, (np.generic,)):
            return value.item()
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise TypeError(f"checkpoint settings must be JSON-like; got {type(value).__name__}")

    return json.loads(json.dumps({str(k): convert(v) for k, v in settings.items()}))


def with_article(text: str) -> str:
    """``text`` after "a", or "an" where its first letter (past any quote) is a vowel: "an attack checkpoint",
    "an 'attack' run", "a saved model"."""
    first = text.lstrip("'\"`")[:1].lower()
    return f"{'an' if first and first in 'aeiou' else 'a'} {text}"


def first_difference(stored: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    """The first setting (in the order of ``current``, then any only in ``stored``) whose values differ,
    as (name, stored value, current value); None when the two agree. A missing value compares as None."""
    stored, current = _normalize(stored), _normalize(current)
    for key in [*current, *(k for k in stored if k not in current)]:
        if stored.get(key) != current.get(key):
            return key, stored.get(key), current.get(key)
    return None


SOFTWARE = ("recon-ntk", "jax", "jaxlib", "neural-tangents", "sympy", "numpy", "scipy")
"""The distributions whose versions :func:`software` records (the project and what its numbers depend on)."""


@functools.lru_cache(maxsize=None)
def source_fingerprint(packages: tuple[str, ...]) -> str:
    """12 hex digits of the SHA-256 of every .py file of ``packages`` of this checkout (path and text): names the
    code that computed a result even between releases (an edited checkout keeps its version number)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def software() -> dict[str, str]:
    """What produced a result file (report.json, metrics.json, ...): Python's and each of :data:`SOFTWARE`'s
    versions, and the fingerprint of this checkout's code (theory, numerics, proofs_check)."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # run from a checkout that is not installed
            versions[name] = "not installed"
    return {**versions, "code": source_fingerprint(("theory", "numerics", "proofs_check"))}


def fingerprint(*arrays: Any) -> str:
    """A short SHA-256 of arrays or pytrees of arrays (shape, dtype and bytes): names the data or model
    a checkpoint belongs to without storing it."""
    digest = hashlib.sha256()
    for tree in arrays:
        for leaf in jax.tree_util.tree_leaves(tree):
            array = np.ascontiguousarray(np.asarray(leaf))
            digest.update(f"{array.shape}{array.dtype.str}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Saved:
    """What :meth:`Checkpoint.load` read: the state (shaped like the template), the step reached, the
    budget it was saved with, the extra arrays and the stored settings."""

    state: Any
    step: int
    budget: int
    extras: dict[str, np.ndarray]
    settings: dict[str, Any]


def _npz_member_header(archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one .npy member, read from its header without loading the data."""
    with archive.open(name) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    return tuple(shape), np.dtype(dtype)


def unreadable(path: Path, error: OSError) -> str:
    """The one line for a file that exists but cannot be read: "cannot read PATH: Permission denied"."""
    return f"cannot read {path}: {error.strerror or error}"


HEADER_KEYS = ("step", "budget", "kind", "n_state", "settings", "format_version")
"""The arrays of a checkpoint besides its state and extras: what Checkpoint.peek reads."""


def read_npz(path: str | os.PathLike, *, what: str, max_other_bytes: int | None = None,
             expected: Mapping[str, tuple[tuple[int, ...], tuple[str, ...]]] | None = None,
             only: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read an ``.npz`` of plain arrays safely: no pickles, and every array's header (shape, dtype kind) is
    checked before any data is read: against ``expected`` (name -> (shape, allowed dtype kinds such as
    ``("f",)``)) where it names the array, otherwise against ``max_other_bytes`` (None: no limit). Returns
    every array, or those named in ``only`` (that are present). Raises :class:`FileError` (one line, saying
    ``what`` the file should have been) for anything else."""
    path = Path(path)
    try:
        if not path.is_file():
            raise FileError(f"no {what} at {path}" + (" (it is a directory)" if path.is_dir() else ""))
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise FileError(f"{path} is not {with_article(what)}: not an .npz archive ({error})") from None
    except OSError as error:  # permission denied, a folder it cannot look into, ...: not a fault of the file's format
        raise FileError(unreadable(path, error)) from None
    a_what = with_article(what)
    with archive:
        names = []
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise FileError(f"{path} is not {a_what}: it holds {info.filename!r}, which is not an array")
            name = info.filename[:-4]
            try:
                shape, dtype = _npz_member_header(archive, info.filename)
            except (ValueError, OSError, zipfile.BadZipFile) as error:
                raise FileError(f"{path}: array {name!r} is unreadable ({error})") from None
            if dtype.hasobject:
                raise FileError(f"{path}: array {name!r} holds Python objects; {a_what} holds only numbers and "
                                "text (objects would need pickle, which can run code)")
            if shape == () and dtype.itemsize > MAX_SCALAR_BYTES:
                raise FileError(f"{path}: {name} is a single value of {dtype.itemsize} bytes; {a_what} holds "
                                f"none above {MAX_SCALAR_BYTES}")
            if expected is not None and name in expected:
                want_shape, kinds = expected[name]
                if shape != tuple(want_shape) or dtype.kind not in kinds:
                    raise FileError(f"{path}: {name} has shape {shape} and dtype {dtype}, expected shape "
                                    f"{tuple(want_shape)} of dtype kind {'/'.join(kinds)}")
            elif max_other_bytes is not None and int(np.prod(shape)) * dtype.itemsize > max_other_bytes:
                raise FileError(f"{path}: unexpected array {name!r} of shape {shape} in {a_what}")
            names.append(name)
    if only is not None:
        wanted = set(only)
        names = [name for name in names if name in wanted]
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in names}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise FileError(f"{path}: {what} is unreadable ({error})") from None


@dataclasses.dataclass
class Checkpoint:
    """The checkpoint file of one loop: ``kind`` names the loop ("train", "attack", ...), ``settings`` what
    must not change between a run and its resumption (learning rate, model fingerprint, ...)."""

    path: Path
    kind: str
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.path = Path(self.path)
        if self.path.suffix != ".npz":
            raise ValueError(f"checkpoint path must end in .npz, got {str(self.path)!r}")
        self.settings = _normalize(self.settings)

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, state: Any, *, step: int, budget: int, extras: Mapping[str, Any] | None = None) -> Path:
        """Write ``state`` (a pytree of arrays), the step reached and the budget, atomically."""
        leaves = jax.tree_util.tree_leaves(state)
        arrays = {f"state_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
        arrays.update({f"extra_{name}": np.asarray(value) for name, value in (extras or {}).items()})
        arrays.update(step=np.asarray(int(step)), budget=np.asarray(int(budget)), kind=np.asarray(self.kind),
                      n_state=np.asarray(len(leaves)), format_version=np.asarray(FORMAT_VERSION),
                      settings=np.asarray(json.dumps(self.settings, sort_keys=True)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        return self.path

    def peek(self) -> tuple[int, int, dict[str, Any]]:
        """(step, budget, settings) of the file, checking only that it is a checkpoint of this kind."""
        try:
            contents = read_npz(self.path, what=f"{self.kind} checkpoint", only=HEADER_KEYS)
        except FileError as error:
            raise CheckpointError(str(error)) from None
        return self._header(contents)

    def peek_extra(self, name: str) -> np.ndarray | None:
        """The extra array ``name`` saved with the state (None when the file has none), checking only that the file
        is a checkpoint of this kind; the state's arrays are not read."""
        try:
            contents = read_npz(self.path, what=f"{self.kind} checkpoint", only=(*HEADER_KEYS, f"extra_{name}"))
        except FileError as error:
            raise CheckpointError(str(error)) from None
        self._header(contents)
        value = contents.get(f"extra_{name}")
        return None if value is None else np.asarray(value)

    def _header(self, contents: Mapping[str, np.ndarray]) -> tuple[int, int, dict[str, Any]]:
        missing = [key for key in HEADER_KEYS if key not in contents]
        if missing:
            raise CheckpointError(f"{self.path} is not {with_article(self.kind)} checkpoint: it lacks "
                                  f"{', '.join(missing)}")
        kind = str(contents["kind"])
        if kind != self.kind:
            raise CheckpointError(f"{self.path} is {with_article(kind)} checkpoint, not {with_article(self.kind)} "
                                  "checkpoint")
        if int(contents["format_version"]) != FORMAT_VERSION:
            raise CheckpointError(f"{self.path} has checkpoint format {int(contents['format_version'])}; this version "
                                  f"reads format {FORMAT_VERSION}")
        try:
            settings = json.loads(str(contents["settings"]))
        except (ValueError, RecursionError):  # invalid JSON, a 5000-digit number, arrays nested 10^5 deep
            raise CheckpointError(f"{self.path}: its settings are not valid JSON") from None
        for key in ("step", "budget"):
            value = contents[key]
            if value.shape != () or value.dtype.kind not in "iu" or int(value) < 0:
                raise CheckpointError(f"{self.path} is not {with_article(self.kind)} checkpoint: its {key} is "
                                      f"{value.tolist()!r}, not a count >= 0")
        return int(contents["step"]), int(contents["budget"]), settings

    def load(self, template: Any, *, budget: int | None = None) -> Saved:
        """Read the checkpoint back into the structure of ``template`` (a pytree of arrays).

        Raises :class:`SettingsMismatch` when a setting differs, :class:`BudgetTooSmall` when ``budget`` is
        below the step reached, :class:`CheckpointError` for a file that is not such a checkpoint.
        """
        leaves, treedef = jax.tree_util.tree_flatten(template)
        try:
            contents = read_npz(self.path, what=f"{self.kind} checkpoint")
        except FileError as error:
            raise CheckpointError(str(error)) from None
        step, stored_budget, settings = self._header(contents)
        difference = first_difference(settings, self.settings)
        if difference is not None:
            raise SettingsMismatch(self.path, *difference)
        if int(contents["n_state"]) != len(leaves):
            raise CheckpointError(f"{self.path} holds {int(contents['n_state'])} state arrays; this loop has "
                                  f"{len(leaves)}")
        missing = [i for i in range(len(leaves)) if f"state_{i}" not in contents]
        if missing:  # "holds 7 state arrays; this loop has 7" said a file that lacked one
            raise CheckpointError(f"{self.path} lacks state array {missing[0]} of its {len(leaves)}")
        arrays = []
        for i, leaf in enumerate(leaves):
            stored, wanted = contents[f"state_{i}"], np.asarray(leaf)
            if stored.shape != wanted.shape or stored.dtype.kind != wanted.dtype.kind:
                raise CheckpointError(f"{self.path}: state array {i} has shape {stored.shape} and dtype {stored.dtype}, "
                                      f"this loop needs {wanted.shape} and {wanted.dtype}")
            arrays.append(stored.astype(wanted.dtype, copy=False))
        if budget is not None and step > budget:
            raise BudgetTooSmall(self.path, step, budget)
        state = jax.tree_util.tree_unflatten(treedef, arrays)
        extras = {key[len("extra_"):]: value for key, value in contents.items() if key.startswith("extra_")}
        return Saved(state=state, step=step, budget=stored_budget, extras=extras, settings=settings)


RUN_RECORD = "run.json"
"""The file in a run folder that records what a command was run with (see :func:`read_run`)."""


def checkpoint_kind(path: str | os.PathLike) -> str | None:
    """The ``kind`` of the checkpoint file at ``path`` ("train", "attack", ...: the loop whose state
    :meth:`Checkpoint.save` wrote there), or None where the file is no checkpoint of this program."""
    try:
        contents = read_npz(path, what="checkpoint", only=("kind", "step", "format_version"))
    except FileError:
        return None
    kind = contents.get("kind")
    if kind is None or "step" not in contents or "format_version" not in contents or kind.shape != () \
            or kind.dtype.kind != "U":
        return None
    return str(kind)


def read_run(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The record a command left in a run folder (``run.json``: its settings and progress), or None."""
    path = Path(folder) / RUN_RECORD
    try:
        if not path.is_file():
            return None
        text = path.read_text()
    except OSError as error:  # the folder or the file may not be read (permissions)
        raise CheckpointError(unreadable(path, error)) from None
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{path} is unreadable ({error}); remove it to start afresh") from None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as error:  # invalid JSON, a 5000-digit number, arrays nested 10^5 deep
        raise CheckpointError(f"{path} is unreadable ({error}); remove it to start afresh") from None
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise CheckpointError(f"{path} is not a run record; remove it to start afresh")
    return record


def write_run(folder: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write ``run.json`` atomically (settings and progress of the command that owns the folder)."""
    path = Path(folder) / RUN_RECORD
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(_normalize(record), indent=2))
    os.replace(temporary, path)
    return path


_recording: InterruptRequests | None = None
"""The requests of the command now running inside :func:`recording_interrupts` (None outside one)."""


@contextmanager
def recording_interrupts(requests: InterruptRequests | None = None) -> Iterator[InterruptRequests]:
    """Within the block every Ctrl-C raises KeyboardInterrupt and is counted in the yielded
    :class:`InterruptRequests` (``requests``, the program's own since it started, or new ones), so that one whose
    KeyboardInterrupt Python discarded (raised inside a gc callback or a ``__del__``: "Exception ignored in ...",
    and the run went on) still stops the command: the next :func:`interruptible` loop stops after its first chunk,
    :func:`raise_if_interrupted` raises, and the caller asks :meth:`InterruptRequests.finish` before reporting
    success. Such discarded KeyboardInterrupts are not printed (the command reports the interruption in one line).
    Outside the main thread it only yields."""
    global _recording
    if requests is None:
        requests = InterruptRequests()
    if threading.current_thread() is not threading.main_thread():
        yield requests
        return
    outer = _recording
    with counting_interrupts(requests):
        _recording = requests
        try:
            yield requests
        finally:
            _recording = outer


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C was recorded by :func:`recording_interrupts` but has not stopped the
    command (Python discarded its KeyboardInterrupt); long phases call it between units of work (a claim's step,
    a sweep cell, a defended setting). A no-op outside a recording command."""
    if _recording is not None and _recording.raising and _recording.requested:
        raise KeyboardInterrupt


class StopFlag:
    """Set by the first Ctrl-C inside :func:`interruptible` (or one recorded before the block); the loop polls
    it between chunks."""

    def __init__(self):
        self.requested = False
        self.handled = threading.Event()
        self.last_check: tuple | None = None
        """(step, total, what, path) of the last :meth:`check`: what a press that ends the program at once names."""

    def check(self, step: int, *, total: int | None = None, what: str = "the loop", path: Path | None = None) -> None:
        """Raise :class:`Interrupted` if Ctrl-C was pressed (call it right after saving the checkpoint)."""
        self.last_check = (step, total, what, path)
        if self.requested:
            raise Interrupted(step, total, what, path)

    def stuck_line(self) -> str:
        """The line of a second press that ends the program while a chunk is still computing."""
        if self.last_check is None:
            return ("interrupted at once (a second Ctrl-C while the first chunk computed); rerun with --resume to "
                    "continue from the run folder's last checkpoint, if it holds one")
        step, total, what, path = self.last_check
        steps = f"step {step}" + (f" of {total}" if total is not None else "")
        if path is None:
            return f"interrupted at once (a second Ctrl-C) after {steps} ({what}); nothing of it was saved"
        return f"interrupted at once (a second Ctrl-C) with {steps} ({what}) saved; rerun with --resume to continue"


_sigint_left_alone = False


def leave_sigint_alone() -> None:
    """From now on :func:`interruptible` installs no SIGINT handler in this process: a worker of proofs-check run
    --jobs ignores SIGINT, and its command's process takes Ctrl-C and stops the workers (an attack or a training loop
    inside a worker put a handler back, through which a terminal's Ctrl-C reached the worker)."""
    global _sigint_left_alone
    _sigint_left_alone = True


@contextmanager
def interruptible() -> Iterator[StopFlag]:
    """Within the block the first SIGINT (Ctrl-C) sets the yielded flag instead of raising; a second one
    raises KeyboardInterrupt at once, or, while a compiled chunk keeps Python from running its handler, ends the
    program at once with one line and 130 (proofs_check.launcher.ending_on_a_stuck_press). Inside :func:`recording_interrupts` the presses are counted there too,
    and a press recorded before the block sets the flag at once (the loop stops after its first chunk, once
    saved; a further press raises). Outside the main thread (where Python cannot install signal handlers)
    Ctrl-C behaves as usual, as it does after :func:`leave_sigint_alone`."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread() or _sigint_left_alone:
        yield flag
        return
    requests = _recording
    flag.requested = requests is not None and requests.requested

    def handler(signum, frame):
        if requests is not None:
            requests.count += 1
        if flag.requested:
            flag.handled.set()  # Python acts on the second press itself: the stuck-press watcher stands down
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        flag.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        with ending_on_a_stuck_press(1 if flag.requested else 2, flag.handled, flag.stuck_line):
            yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
