"""Checkpoint directories: checked before RLlib reads them, written atomically, and
found from relative paths.

RLlib's own errors for a missing, half-written or foreign checkpoint come from deep in
its loaders (a JSON decode error, a torch ``load_state_dict`` size mismatch); these
checks name the path, what is wrong and what to pass instead. Where they advise another
checkpoint, they name the complete ones that exist beside it (or say that none does).

RLlib infers a checkpoint's filesystem with ``pyarrow.fs.FileSystem.from_uri(path)``,
which refuses a relative local path (``ArrowInvalid: URI has empty scheme``);
``accept_relative_paths`` makes ``Algorithm.from_checkpoint`` and
``Algorithm.restore_from_path`` resolve such a path against the working directory first.
"""

import functools
import json
import os
import pickle
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

import pyarrow.fs
import ray

from rllib_softqmix.core.validation import ConfigError
from rllib_softqmix.envs.team_env import TEAM

CLASS_FILE = "class_and_ctor_args.pkl"
ALGORITHM_METADATA = "rllib_checkpoint.json"  # "metadata.json" in a component's directory
ALGORITHM_FILES = (CLASS_FILE, ALGORITHM_METADATA, "algorithm_state.pkl")
MODULE_DIR = ("learner_group", "learner", "rl_module", TEAM)


class CheckpointError(ConfigError):
    """The path is not a usable checkpoint of this package (or not of this algorithm)."""


def local_checkpoint_dir(path: Any, filesystem: Any = None) -> Optional[str]:
    """``path`` (a str, Path or ray.tune.Checkpoint) as a local directory, or None when it
    lives on another filesystem (those are left to RLlib)."""
    if hasattr(path, "filesystem") and hasattr(path, "path"):  # a ray.tune.Checkpoint
        path, filesystem = path.path, path.filesystem
    if filesystem is not None and not isinstance(filesystem, pyarrow.fs.LocalFileSystem):
        return None
    path = os.fspath(path)
    return None if "://" in path else path


def absolute_local_path(path: Any, filesystem: Any = None) -> Any:
    """``path`` made absolute when it is a relative local path (a str or os.PathLike
    without a URI scheme, and no filesystem given); any other path as it is."""
    if filesystem is None and isinstance(path, (str, os.PathLike)):
        text = os.fspath(path)
        if text and "://" not in text and not os.path.isabs(text):
            return os.path.abspath(text)
    return path


def accept_relative_paths(algorithm_class: type) -> None:
    """Makes ``algorithm_class.from_checkpoint`` and ``.restore_from_path`` (RLlib's
    Algorithm's, so also every subclass's) take a relative path, which RLlib's own
    ``pyarrow.fs.FileSystem.from_uri`` refuses; other paths reach RLlib unchanged.
    ``Algorithm.from_checkpoint`` reads the path before it hands over to the class stored
    in the checkpoint, so the stored class cannot do this itself. Idempotent."""
    if getattr(algorithm_class, "_accepts_relative_paths", False):
        return
    from_checkpoint = algorithm_class.from_checkpoint.__func__
    restore_from_path = algorithm_class.restore_from_path

    @functools.wraps(from_checkpoint)
    def from_checkpoint_resolved(cls, path, filesystem=None, **kwargs):
        return from_checkpoint(cls, absolute_local_path(path, filesystem), filesystem, **kwargs)

    @functools.wraps(restore_from_path)
    def restore_from_path_resolved(self, path, *args, **kwargs):
        path = absolute_local_path(path, kwargs.get("filesystem"))
        return restore_from_path(self, path, *args, **kwargs)

    algorithm_class.from_checkpoint = classmethod(from_checkpoint_resolved)
    algorithm_class.restore_from_path = restore_from_path_resolved
    algorithm_class._accepts_relative_paths = True


def complete_checkpoints_near(directory: Union[str, Path]) -> List[Path]:
    """The complete Algorithm checkpoints (every file of ``ALGORITHM_FILES`` present) inside
    ``directory`` and beside it (a Tune trial's other checkpoints), but ``directory`` itself."""
    directory = Path(directory).absolute()
    candidates = [child for parent in (directory, directory.parent) if parent.is_dir()
                  for child in parent.iterdir()]
    return sorted(candidate for candidate in candidates if candidate != directory
                  and all((candidate / name).is_file() for name in ALGORITHM_FILES))


def other_checkpoints_advice(checkpoint: Union[str, Path]) -> str:
    """What to restore instead of the unusable ``checkpoint``: the complete checkpoints
    beside (or inside) it, named, or that there are none."""
    others = complete_checkpoints_near(checkpoint)
    if others:
        return f"Complete checkpoints beside it: {', '.join(str(path) for path in others)}."
    return (f"No complete checkpoint is beside it in {Path(checkpoint).absolute().parent}: save "
            f"one (algo.save()) or train again.")


def _written_by_ray(directory: Path) -> Optional[str]:
    """The Ray version in the metadata file RLlib writes beside each component's pickle."""
    for name in (ALGORITHM_METADATA, "metadata.json"):
        try:
            return str(json.loads((directory / name).read_text())["ray_version"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def read_class_and_ctor_args(directory: Path, what: str, checkpoint: Optional[Path] = None) -> dict:
    """The unpickled ``class_and_ctor_args.pkl`` of one checkpointed component (the whole
    ``checkpoint`` itself, by default, or a directory inside it)."""
    try:
        with open(directory / CLASS_FILE, "rb") as file:
            return pickle.load(file)
    except Exception as error:  # noqa: BLE001 - any unreadable file means a corrupt checkpoint
        written_by = _written_by_ray(directory)
        if written_by is not None and written_by != ray.__version__:
            advice = (f"It was written by Ray {written_by} and this is Ray {ray.__version__}: "
                      f"load it with Ray {written_by}.")
        elif isinstance(error, (ImportError, AttributeError)):
            advice = ("A class it names cannot be imported here: load it with the versions of "
                      "Ray and rllib_softqmix that wrote it.")
        else:
            advice = ("The file is corrupt (e.g. cut short by a crash or an incomplete copy). "
                      + other_checkpoints_advice(checkpoint or directory))
        raise CheckpointError(f"{directory / CLASS_FILE} (the {what} of the checkpoint) cannot be "
                              f"read: {error!r}. {advice}") from None


def checkpointed_algorithm_class(path: Union[str, Path]) -> type:
    """The Algorithm class stored in the checkpoint at ``path``; CheckpointError if
    ``path`` is not a complete Algorithm checkpoint."""
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist or is not a directory. Pass the directory "
            f"that algo.save() or Tune wrote, e.g. .../checkpoint_000010 "
            f"(result.checkpoint.path).")
    missing = [name for name in ALGORITHM_FILES if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{directory} is not a complete Algorithm checkpoint: {missing} missing (an "
            f"interrupted save or another kind of directory). Pass the directory that algo.save() "
            f"or Tune wrote, e.g. .../checkpoint_000010. {other_checkpoints_advice(directory)}")
    return read_class_and_ctor_args(directory, "algorithm class")["class"]


def defining_algorithm(cls: type) -> type:
    """The class in ``cls``'s MRO that defines its algorithm (``get_default_config``):
    ``cls`` itself, or what a thin subclass such as a Tune wrapper derives from."""
    return next((base for base in cls.__mro__ if "get_default_config" in vars(base)), cls)


def check_algorithm_checkpoint(path: Union[str, Path], expected: type, exact: bool) -> type:
    """Checks that ``path`` holds a checkpoint of ``expected``'s algorithm (or, unless
    ``exact``, of a subclass) and returns the stored class."""
    stored = checkpointed_algorithm_class(path)
    if not isinstance(stored, type):
        fits = False
    elif exact:
        fits = defining_algorithm(stored) is defining_algorithm(expected)
    else:
        fits = issubclass(stored, expected)
    if not fits:
        name = getattr(stored, "__name__", repr(stored))
        raise CheckpointError(
            f"{path} is a checkpoint of {name}, not of {expected.__name__}: their networks and "
            f"state differ. Restore it with {name}.from_checkpoint(path), or train "
            f"{expected.__name__} from scratch.")
    return stored


def checkpointed_team_spaces(path: Union[str, Path]):
    """(observation_space, action_space) of the team module stored under ``path``."""
    ctor = read_class_and_ctor_args(Path(path).joinpath(*MODULE_DIR), "team module", Path(path))
    _, kwargs = ctor["ctor_args_and_kwargs"]
    return kwargs["observation_space"], kwargs["action_space"]


def save_atomically(target: Union[str, Path], write: Callable[[str], object]) -> str:
    """Calls ``write(staging_dir)`` on a fresh directory beside ``target`` and only then
    renames it to ``target``: a crash while writing leaves ``target`` as it was.

    Replacing an existing non-empty ``target`` takes two renames; in between, the
    previous checkpoint is ``.<name>.previous-<id>`` beside it.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.saving-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        write(str(staging))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.is_dir() and any(target.iterdir()):
        previous = target.with_name(f".{target.name}.previous-{uuid.uuid4().hex[:8]}")
        os.rename(target, previous)
        os.rename(staging, target)
        shutil.rmtree(previous, ignore_errors=True)
    else:
        os.replace(staging, target)  # atomic onto a missing or empty directory
    return str(target)
