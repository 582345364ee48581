"""Checkpoint directories: checked before RLlib reads them, written atomically.

RLlib's own errors for a missing, half-written or foreign checkpoint come from deep in
its loaders (a JSON decode error, a torch ``load_state_dict`` size mismatch); these
checks name the path, what is wrong and what to pass instead.
"""

import os
import pickle
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pyarrow.fs

from rllib_softqmix.core.validation import ConfigError
from rllib_softqmix.envs.team_env import TEAM

CLASS_FILE = "class_and_ctor_args.pkl"
ALGORITHM_FILES = (CLASS_FILE, "rllib_checkpoint.json", "algorithm_state.pkl")
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


def read_class_and_ctor_args(directory: Path, what: str) -> dict:
    """The unpickled ``class_and_ctor_args.pkl`` of one checkpointed component."""
    try:
        with open(directory / CLASS_FILE, "rb") as file:
            return pickle.load(file)
    except Exception as error:  # noqa: BLE001 - any unreadable file means a corrupt checkpoint
        raise CheckpointError(
            f"{directory / CLASS_FILE} (the {what} of the checkpoint) cannot be read: {error!r}. "
            f"The checkpoint is corrupt or was written by another version of Ray/Python; "
            f"use an earlier checkpoint of the run.") from None


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
            f"or Tune wrote, e.g. .../checkpoint_000010; an earlier checkpoint of the run is "
            f"intact.")
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
    ctor = read_class_and_ctor_args(Path(path).joinpath(*MODULE_DIR), "team module")
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
