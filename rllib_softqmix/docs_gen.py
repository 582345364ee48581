"""Writes docs/configuration.md: every setting of every algorithm, from the code.

    python -m rllib_softqmix.docs_gen            # rewrite docs/configuration.md
    python -m rllib_softqmix.docs_gen --check    # exit 1 if the committed page is stale

For each algorithm's config class the page takes
- the settings and their checks from its ``SETTINGS`` table (``core/validation.py``);
  a check's valid values are read back from the error it raises for a value no check
  accepts, so the page says exactly what the check enforces;
- the defaults from a fresh instance (``QMIXConfig()`` etc.);
- the meanings from the ``Args:`` sections of the ``training()`` docstrings (RLlib's
  own settings, which this family reads but does not document there, from
  ``RLLIB_MEANINGS`` below).
A setting without a meaning is an error, so a new setting cannot reach the page
undocumented.
"""

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

from rllib_softqmix.core.validation import ConfigError
from rllib_softqmix.gre.config import QMIXGREConfig
from rllib_softqmix.maven.config import MAVENConfig
from rllib_softqmix.qmix.config import QMIXConfig
from rllib_softqmix.qmix.vdn import VDNConfig
from rllib_softqmix.soft_qmix.config import SoftQMIXConfig

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
COMMAND = "python -m rllib_softqmix.docs_gen"

# (registered name, config class, its page under docs/algorithms/)
ALGORITHMS = (
    ("QMIX", QMIXConfig, "qmix.md"),
    ("VDN", VDNConfig, "vdn.md"),
    ("SoftQMIX", SoftQMIXConfig, "soft_qmix.md"),
    ("QMIXGRE", QMIXGREConfig, "gre.md"),
    ("MAVEN", MAVENConfig, "maven.md"),
)

# RLlib's own settings in QMIXConfig.SETTINGS, as this family reads them.
RLLIB_MEANINGS = {
    "lr": "learning rate of the TD optimiser (Adam or RMSprop, see optimizer_type).",
    "gamma": "discount factor.",
    "grad_clip": "global-norm gradient clip of every gradient step (always by global norm, "
                 "as in PyMARL); null: no clip.",
    "num_envs_per_env_runner": "team envs stepped in lockstep by each EnvRunner, with one "
                               "batched forward pass for all of them.",
    "num_env_runners": "remote EnvRunner processes; 0 samples in the driver.",
    "num_learners": "remote Learner processes; 0 trains in the driver.",
    "seed": "seed of the networks, the envs, exploration and the replay sampler; null: "
            "unseeded.",
    "min_sample_timesteps_per_iteration": "env steps that make one Tune iteration (training "
                                          "steps repeat until this many were sampled).",
    "evaluation_interval": "greedy evaluation every this many iterations; null or 0: none.",
    "evaluation_duration": "episodes per evaluation (evaluation_duration_unit is episodes).",
    "restart_failed_sub_environments": "rebuild an env whose step() or reset() raised and "
                                       "drop its unfinished episode (the CLI turns it on).",
    "restart_failed_env_runners": "RLlib restarts an EnvRunner process that died.",
    "num_consecutive_env_runner_failures_tolerance": "env failures in a row, without a "
                                                     "finished episode in between, before "
                                                     "sampling stops with an error.",
}


class _Unaccepted:
    """A value that no check accepts: what a check says about it is its requirement."""

    def __repr__(self) -> str:
        return "<probe>"


def valid_values(check) -> str:
    """What ``check`` accepts, read back from the ConfigError it raises for a value that
    no check accepts, e.g. "an integer >= 1", "one of ['gru', 'mlp']"."""
    key = "setting"
    try:
        check("probe", key, _Unaccepted())
    except ConfigError as error:
        message = error.args[0]
        prefix = f"{key} must be "
        text = message[message.index(prefix) + len(prefix):] if prefix in message else message
        return text.rstrip(".")
    return "any value"


def _args_section(docstring: str) -> Dict[str, str]:
    """{name: text} of a Google-style ``Args:`` section, continuation lines joined."""
    meanings: Dict[str, str] = {}
    lines = docstring.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration:
        return meanings
    indent: Optional[int] = None
    name = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            indent = width
        if width < indent:
            break
        match = re.match(r"(\w+): (.*)", line.strip())
        if width == indent and match:
            name = match.group(1)
            meanings[name] = match.group(2)
        elif name is not None:
            meanings[name] += " " + line.strip()
    return meanings


def meanings_of(config_class: type) -> Dict[str, Tuple[str, str]]:
    """{setting: (meaning, the class whose training() documents it)}; the most derived
    class's text wins."""
    found: Dict[str, Tuple[str, str]] = {}
    for cls in config_class.__mro__:
        if "training" in vars(cls) and issubclass(cls, QMIXConfig):
            for name, text in _args_section(inspect.getdoc(vars(cls)["training"]) or "").items():
                found.setdefault(name, (text, cls.__name__))
    return found


def setter_of(key: str) -> str:
    """The AlgorithmConfig method that takes ``key`` (``training`` for this family's own)."""
    for method in ("training", "fault_tolerance", "env_runners", "learners", "debugging",
                   "reporting", "evaluation"):
        if key in inspect.signature(getattr(AlgorithmConfig, method)).parameters:
            return method
    return "training"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(value) -> str:
    if isinstance(value, str):
        return f'`"{value}"`'
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value!r}`"


def _meaning(key: str, meanings: Dict[str, Tuple[str, str]]) -> str:
    if key in meanings:
        return meanings[key][0]
    if key in RLLIB_MEANINGS:
        return RLLIB_MEANINGS[key]
    raise KeyError(f"setting {key!r} has no meaning: document it in the Args of its config's "
                   f"training() docstring (or in RLLIB_MEANINGS for RLlib's own settings)")


def render() -> str:
    base_keys = list(QMIXConfig.SETTINGS)
    defaults = {name: cls() for name, cls, _ in ALGORITHMS}
    base_meanings = meanings_of(QMIXConfig)
    lines: List[str] = [
        "# Configuration",
        "",
        f"<!-- Generated by `{COMMAND}` from the config classes; do not edit by hand. -->",
        "",
        "Every setting of every algorithm: its name, its default per algorithm, the values its",
        "check accepts (a value outside them is a `ConfigError` naming the key, before Ray",
        "starts) and what it means. Set them with `config.training(...)` (the family's own",
        "settings and RLlib's `lr`, `gamma`, `grad_clip`), with the RLlib method named in",
        "the \"set with\" column, or as keys of a YAML file's `config:` section (see the",
        "README, \"Experiments from YAML\"). Tune search spaces are checked value by value.",
        "",
        f"This page is written by `{COMMAND}` from the `SETTINGS` tables of the config",
        "classes (`rllib_softqmix/*/config.py`), the defaults of fresh config instances and",
        "the `Args:` sections of their `training()` docstrings; `tests/test_docs.py` fails",
        "when it is out of date.",
        "",
        "## Settings of the whole family",
        "",
        "Defaults per algorithm; **bold** where an algorithm's default differs from QMIX's.",
        "",
        "| setting | set with | valid values | " + " | ".join(
            f"[{name}](algorithms/{page})" for name, _, page in ALGORITHMS) + " | meaning |",
        "|---|---|---|" + "---|" * len(ALGORITHMS) + "---|",
    ]
    for key in base_keys:
        checks = {valid_values(cls.SETTINGS[key]) for _, cls, _ in ALGORITHMS}
        if len(checks) != 1:
            raise ValueError(f"{key!r} has different checks across the algorithms: {checks}")
        qmix_default = getattr(defaults["QMIX"], key)
        cells = []
        for name, _, _ in ALGORITHMS:
            value = getattr(defaults[name], key)
            text = _default(value)
            cells.append(f"**{text}**" if value != qmix_default else text)
        lines.append(f"| `{key}` | `.{setter_of(key)}()` | {_cell(checks.pop())} | "
                     + " | ".join(cells) + f" | {_cell(_meaning(key, base_meanings))} |")
    for name, cls, page in ALGORITHMS:
        own = [key for key in cls.SETTINGS if key not in QMIXConfig.SETTINGS]
        if not own:
            continue
        meanings = meanings_of(cls)
        lines += [
            "",
            f"## {name} only (`{cls.__name__}`)",
            "",
            f"Set with `{cls.__name__}().training(...)`; the maths is in "
            f"[{name}](algorithms/{page}).",
            "",
            "| setting | valid values | default | meaning |",
            "|---|---|---|---|",
        ]
        for key in own:
            lines.append(f"| `{key}` | {_cell(valid_values(cls.SETTINGS[key]))} | "
                         f"{_default(getattr(defaults[name], key))} | "
                         f"{_cell(_meaning(key, meanings))} |")
    lines += [
        "",
        "## Checks across settings",
        "",
        "Besides the value checks above, each config's `validate_settings()` rejects",
        "combinations that cannot work (the error names the keys and the fix), e.g. a",
        "replay buffer smaller than one batch, `sample_while_learning` without remote",
        "EnvRunners, a mixer other than `qmix` for QMIX-GRE with `gre_lambda > 0` or for",
        "MAVEN, Soft-QMIX's `weighted_td` without the function f, and MAVEN's",
        "`mi_intrinsic` with `rnn_discrim`. RLlib settings this family does not read",
        "(`train_batch_size`, `num_epochs`, `rollout_fragment_length`, ...) are errors that",
        "name the setting to use instead, and unknown keys are errors with the closest",
        "known key.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed page instead of writing it")
    parser.add_argument("--out", type=Path, default=PAGE, help="the page to write or check")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != page:
            print(f"{args.out} is out of date: run `{COMMAND}`.", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(page)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
