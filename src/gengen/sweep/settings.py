"""What identifies a study (its :class:`Settings`, recorded in the database) and the numbers every part
of a sweep shares: one module below all the others (storage, plan, trial, report, study), so they
import it and never each other in a circle."""

from __future__ import annotations

import json
from dataclasses import dataclass

SETTINGS_ATTR = "gengen.settings"
PLANNED_ATTR = "gengen.planned"
SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("median", "halving", "none")
DEFAULT_HEARTBEAT = 30.0  # seconds between heartbeats; a trial is stale after GRACE_FACTOR of them
GRACE_FACTOR = 3
HEARTBEAT_RANGE = (1.0, 3600.0)  # optuna beats in whole seconds; an hour's beat re-queues a lost trial after 3 h
GRID_WITHOUT_TRIALS = 10_000  # a larger grid needs --trials (a seeded subset, or all of it by asking)
QUEUE_AHEAD = 32  # trials queued ahead of the workers; the rest of the plan is queued as they go
DEFAULT_TPE_TRIALS = 20
MAX_ATTEMPTS = 3  # a configuration whose worker is lost this many times is recorded as failed
STUDY_DB = "study.db"
MARKER = "sweep.json"


@dataclass
class Settings:
    """What identifies a study: every worker must run the same pipeline, space and data on it."""

    pipeline: str
    space: dict
    sampler: str
    pruner: str
    seed: int
    heartbeat: float
    objective: str
    direction: str
    options: dict
    data: dict | None = None
    space_name: str = "custom"

    def to_json(self) -> str:
        return json.dumps(self.__dict__)  # insertion order kept: the space's order is its grid's order

    @classmethod
    def from_json(cls, text: str) -> Settings:
        return cls(**json.loads(text))
