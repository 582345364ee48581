"""MAVEN on the shared QMIX engine."""

from rllib_softqmix.maven.algorithm import MAVEN
from rllib_softqmix.maven.config import MAVENConfig

__all__ = ["MAVEN", "MAVENConfig"]
