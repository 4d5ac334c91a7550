"""Shared run-time plumbing, used by all three pipelines (keep pipeline logic out), one module per concern:

- :mod:`~gengen.runtime.device`: device choice, CPU threads, seeding, precision, CUDA graphs, memory checks;
- :mod:`~gengen.runtime.progress`: log lines and progress bars;
- :mod:`~gengen.runtime.files`: reading files that are not ours (regular files only, bounded JSON);
- :mod:`~gengen.runtime.temps`: temporaries and write locks;
- :mod:`~gengen.runtime.outputs`: the output plan, atomic files and folders, the command scope.

This package knows nothing of models: callers resolve model names (:func:`gengen.store.resolve_model`)
and hand the output plan paths and checks.
"""

from __future__ import annotations

from gengen.runtime.device import (
    DEVICE_CHOICES,
    PRECISIONS,
    SMALL_NET_PARAMS,
    autocast,
    capture_cuda_graph,
    check_memory,
    cuda_graphs_wanted,
    describe_device,
    make_capturable,
    on_device,
    package_versions,
    resolve_device,
    resolve_precision,
    seed_everything,
    set_threads,
    small_model_threads,
    usable_cores,
)
from gengen.runtime.files import (
    JSON_MAX_DEPTH,
    copy_regular_tree,
    file_kind,
    load_json,
    open_regular,
    read_json,
    read_regular,
    stat_is_link,
)
from gengen.runtime.outputs import (
    REPORT_MANIFEST,
    OutputPlan,
    atomic_dir,
    atomic_path,
    command_scope,
    exchange_paths,
    give_umask_modes,
    on_command_exit,
    plan_outputs,
    side_path,
)
from gengen.runtime.progress import (
    ESTIMATE_AFTER_S,
    LONG_RUN_S,
    Progress,
    log,
    stop_if_terminated,
)
from gengen.runtime.temps import (
    FOREIGN_TEMP_MAX_AGE,
    LOCK_SUFFIX,
    TEMP_TAG,
    clean_stale_temps,
    new_temp,
    output_error,
    output_lock,
    pid_alive,
    remove_temp,
    temp_path,
)

__all__ = [
    "pid_alive",
    "DEVICE_CHOICES",
    "ESTIMATE_AFTER_S",
    "FOREIGN_TEMP_MAX_AGE",
    "JSON_MAX_DEPTH",
    "LOCK_SUFFIX",
    "LONG_RUN_S",
    "OutputPlan",
    "PRECISIONS",
    "Progress",
    "REPORT_MANIFEST",
    "SMALL_NET_PARAMS",
    "TEMP_TAG",
    "atomic_dir",
    "atomic_path",
    "autocast",
    "capture_cuda_graph",
    "check_memory",
    "clean_stale_temps",
    "command_scope",
    "copy_regular_tree",
    "cuda_graphs_wanted",
    "describe_device",
    "exchange_paths",
    "file_kind",
    "give_umask_modes",
    "load_json",
    "log",
    "make_capturable",
    "new_temp",
    "on_command_exit",
    "on_device",
    "open_regular",
    "output_error",
    "output_lock",
    "package_versions",
    "plan_outputs",
    "read_json",
    "read_regular",
    "remove_temp",
    "resolve_device",
    "resolve_precision",
    "seed_everything",
    "set_threads",
    "side_path",
    "small_model_threads",
    "stat_is_link",
    "stop_if_terminated",
    "temp_path",
    "usable_cores",
]
