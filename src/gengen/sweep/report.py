"""A sweep's outputs: the trials table, the figure, the best model folder and a summary, and the
:class:`SweepResult` a worker returns with them."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gengen.errors import GengenError
from gengen.runtime import atomic_dir, atomic_path, log, pid_alive, read_json
from gengen.sweep.settings import PLANNED_ATTR, Settings
from gengen.sweep.storage import folder_lock, redact
from gengen.sweep.trial import finished_count, trial_dir

if TYPE_CHECKING:
    import pandas as pd

    from gengen.sweep.pipelines import Pipeline
    from gengen.sweep.space import SearchSpace

FIXED_COLUMNS = ("trial", "state")
TRAILING = ("epochs_run", "duration_s", "worker", "started", "finished", "note")


@dataclass
class SweepResult:
    """What a worker leaves: the study's trials table, the best trial and where outputs were written."""

    study_name: str
    storage: str
    table: Any  # pandas DataFrame, one row per trial
    best: dict | None
    outputs: dict[str, Path]
    ran: int  # trials this worker finished
    complete: bool  # nothing waiting or running any more
    notes: list[str] = field(default_factory=list)


def trials_table(study, objective: str, space: SearchSpace | None = None) -> pd.DataFrame:
    """One row per trial: number, state, objective, parameters, extra metrics, epochs run (reported),
    duration, worker, start/finish times and a note (pruning epoch, error, retry of / re-queued as)."""
    import pandas as pd

    trials = study.get_trials(deepcopy=False)
    retried_as = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}
    names = list(space.dimensions) if space is not None else sorted({k for t in trials for k in t.params})
    skip = {"worker", "seconds", "epochs", "sweep_dir", "error", "slot", "grid_index", "retry_of", "attempt", "interrupted"}
    extra = sorted({k for t in trials for k in t.user_attrs if k not in skip})
    rows = []
    for t in trials:
        state = t.state.name.lower()
        row: dict[str, Any] = {"trial": t.number, "state": state, objective: t.value}
        row.update({n: t.params.get(n) for n in names})
        row.update({k: t.user_attrs.get(k) for k in extra})
        notes = []
        if state == "pruned":
            notes.append(f"pruned at epoch {t.user_attrs.get('epochs', len(t.intermediate_values))}")
        if "error" in t.user_attrs:
            notes.append(str(t.user_attrs["error"]))
        elif state == "fail" and t.user_attrs.get("interrupted"):
            notes.append("interrupted")
        elif state == "fail":
            notes.append("worker lost mid-trial (heartbeat stopped)")
        if t.number in retried_as:
            notes.append(f"re-queued as trial {retried_as[t.number]}")
        if "retry_of" in t.user_attrs:
            notes.append(f"retry of trial {t.user_attrs['retry_of']}")
        dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        row.update(epochs_run=len(t.intermediate_values), duration_s=None if dur is None else round(dur, 3),
                   worker=t.user_attrs.get("worker"),
                   started=t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
                   finished=t.datetime_complete.isoformat(timespec="seconds") if t.datetime_complete else None,
                   note="; ".join(notes))
        rows.append(row)
    cols = list(FIXED_COLUMNS) + [objective] + names + extra + list(TRAILING)
    return pd.DataFrame(rows, columns=cols)


def latent_vs_pca(table: pd.DataFrame, objective: str, *, space: SearchSpace | None = None,
                  labelled: bool | None = None) -> pd.DataFrame | None:
    """For VAE sweeps with ``--by``: per latent size, the best trial's objective and kNN accuracy next
    to PCA's at the same k (BioBombe's comparison: where does the VAE beat the linear baseline?).

    Every latent size the study ran is a row, also one whose trials were all pruned or failed: its
    numbers are empty and ``status`` says why (``pruned at epoch 12``, ``failed: ...``, ``running``), so a
    size is never dropped from the comparison without a word. ``labelled`` (default: whether any trial
    measured kNN accuracy) says whether the sweep had labels; ``space`` places trials that stopped
    before recording their size (its ``latent`` values).
    """
    import pandas as pd

    need = {"latent_size", "knn_accuracy", "pca_knn_accuracy"}
    if labelled is None:
        labelled = need.issubset(table.columns) and table["knn_accuracy"].notna().any()
    if not labelled or table.empty:
        return None
    sizes = _latent_sizes(table, space)
    rows = []
    for k in sorted(sizes.dropna().unique()):
        g = table[sizes == k]
        done = g[(g["state"] == "complete") & g[objective].notna()]
        if "knn_accuracy" in done.columns:
            done = done[done["knn_accuracy"].notna()]
        row = {"latent_size": int(k), "trials": len(g), f"best_{objective}": None, "vae_heldout_bce": None,
               "pca_heldout_bce": None, "vae_knn_accuracy": None, "vae_knn_accuracy_max": None,
               "pca_knn_accuracy": None, "vae_minus_pca": None, "status": _size_status(g, done, objective)}
        if len(done):
            best = done.loc[done[objective].idxmin()]
            row.update({f"best_{objective}": best[objective], "vae_heldout_bce": best.get("heldout_bce"),
                        "pca_heldout_bce": best.get("pca_heldout_bce"), "vae_knn_accuracy": best["knn_accuracy"],
                        "vae_knn_accuracy_max": done["knn_accuracy"].max(),
                        "pca_knn_accuracy": best["pca_knn_accuracy"],
                        "vae_minus_pca": best["knn_accuracy"] - best["pca_knn_accuracy"]})
        rows.append(row)
    if not rows:
        return None
    return pd.DataFrame(rows).astype({c: float for c in (f"best_{objective}", "vae_heldout_bce", "pca_heldout_bce",
                                                          "vae_knn_accuracy", "vae_knn_accuracy_max",
                                                          "pca_knn_accuracy", "vae_minus_pca")})


def _latent_sizes(table: pd.DataFrame, space: SearchSpace | None) -> pd.Series:
    """Each trial's latent size: measured (complete trials), else its ``latent`` parameter, else the
    space's fixed value, else the one size every complete trial had (the recipe's default for the data)."""
    import pandas as pd

    sizes = pd.to_numeric(table["latent_size"], errors="coerce") if "latent_size" in table.columns else \
        pd.Series(float("nan"), index=table.index)
    if "latent" in table.columns:
        sizes = sizes.fillna(pd.to_numeric(table["latent"], errors="coerce"))
    fixed = space.fixed.get("latent") if space is not None else None
    if fixed is not None:
        sizes = sizes.fillna(float(fixed))
    elif "latent" not in table.columns and sizes.dropna().nunique() == 1:
        sizes = sizes.fillna(sizes.dropna().iloc[0])
    return sizes


def _size_status(g: pd.DataFrame, done: pd.DataFrame, objective: str) -> str:
    """How the trials of one latent size ended, in a few words."""
    counts = g["state"].value_counts()
    pruned = g[g["state"] == "pruned"]
    failed = g[g["state"] == "fail"]
    parts = []
    if len(done):
        parts.append("complete")
    if len(pruned):
        epochs = ", ".join(str(int(e)) for e in sorted(pruned["epochs_run"].dropna().unique()))
        what = f"pruned at epoch{'s' if ',' in epochs else ''} {epochs}" if epochs else "pruned"
        parts.append(what if not len(done) and len(pruned) == 1 else f"{len(pruned)} {what}")
    if len(failed) and not len(done):
        first = str(failed["note"].iloc[0] or "").split(";")[0][:80]
        parts.append(f"failed ({first})" if first else "failed")
    for state in ("running", "waiting"):
        if counts.get(state):
            parts.append(f"{counts[state]} {state}")
    if not len(done) and not parts:
        parts.append("no complete trial")
    return "; ".join(parts)


def plot_sweep(table: pd.DataFrame, objective: str, direction: str, *, space: SearchSpace, path) -> Path:
    """Objective per trial (with the best so far) and objective against each swept parameter."""
    import numpy as np

    from gengen.plots import pyplot

    plt = pyplot()
    names = list(space.dimensions)
    n = 1 + len(names)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    flat = axes.ravel()
    styles = {"complete": dict(marker="o", color="C0"), "pruned": dict(marker="x", color="C1"),
              "fail": dict(marker="v", color="C3")}
    ax = flat[0]
    for state, st in styles.items():
        sub = table[(table["state"] == state) & table[objective].notna()]
        if len(sub):
            ax.scatter(sub["trial"], sub[objective], s=18, label=state, **st)
    done = table[(table["state"] == "complete") & table[objective].notna()].sort_values("trial")
    if len(done):
        acc = np.minimum.accumulate if direction == "minimize" else np.maximum.accumulate
        ax.step(done["trial"], acc(done[objective].to_numpy()), where="post", color="k", lw=1, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_title("objective per trial")
    ax.legend(frameon=False, fontsize=7)
    for ax, name in zip(flat[1:], names):
        dim = space.dimensions[name]
        for state, st in styles.items():
            sub = table[(table["state"] == state) & table[objective].notna() & table[name].notna()]
            if not len(sub):
                continue
            x = sub[name]
            if dim.param.kind in ("str", "bool"):
                order = [str(v) for v in (dim.values or [])]
                x = [order.index(str(v)) if str(v) in order else -1 for v in x]
                ax.set_xticks(range(len(order)), order)
            ax.scatter(x, sub[objective], s=14, **st)
        if dim.log:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_title(f"{objective} vs {name}", fontsize=9)
    for ax in flat[n:]:
        ax.axis("off")
    # fixed margins instead of tight_layout + a tight bounding box: one draw instead of three (the
    # figure is written at the end of every worker)
    width, height = 4.2 * cols, 3.4 * rows  # inches; margins in inches so labels fit at any panel count
    fig.subplots_adjust(left=0.85 / width, right=1 - 0.15 / width, bottom=0.55 / height, top=1 - 0.35 / height,
                        wspace=0.32, hspace=0.5)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(path)


def _copy_model(src: Path, dest: Path) -> None:
    """The best trial's model folder as ``best/``: regular files only, never what a link points at."""
    from gengen.runtime import copy_regular_tree

    with atomic_dir(dest) as tmp:
        copy_regular_tree(src, tmp, "trial's model folder")


def write_outputs(study, pipe: Pipeline, space: SearchSpace, *, settings: Settings, out: Path, url: str,
                  worker: str, ran: int, register: str | None, quiet: bool, optuna, retrain=None) -> SweepResult:
    """trials.csv, sweep.png, best/ (when this machine holds the best model), latent_vs_pca.tsv (VAE
    with --by), summary.json; a short report on stderr."""
    TrialState = optuna.trial.TrialState
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):  # workers sharing a sweep folder write its outputs one at a time
        trials = study.get_trials(deepcopy=False)
        table = trials_table(study, pipe.objective, space)
        outputs: dict[str, Path] = {}
        with atomic_path(out / "trials.csv") as tmp:
            table.to_csv(tmp, index=False)
        outputs["trials"] = out / "trials.csv"
        if table[pipe.objective].notna().any():
            outputs["figure"] = plot_sweep(table, pipe.objective, pipe.direction, space=space, path=out / "sweep.png")
        pca = None
        if pipe.name == "vae":
            pca = latent_vs_pca(table, pipe.objective, space=space, labelled=bool(settings.options.get("by")) or None)
        if pca is not None:
            with atomic_path(out / "latent_vs_pca.tsv") as tmp:
                pca.to_csv(tmp, sep="\t", index=False)
            outputs["latent_vs_pca"] = out / "latent_vs_pca.tsv"
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        best = None
        notes: list[str] = []
        if pca is not None:
            for _, row in pca[pca[f"best_{pipe.objective}"].isna()].iterrows():
                notes.append(f"latent size {row['latent_size']} has no complete trial ({row['status']}): its row in "
                             "latent_vs_pca.tsv is kept, with empty values")
        summary_path = out / "summary.json"
        previous_best = _previous_best(summary_path)  # read before summary.json is rewritten below
        if complete:
            pick = min if pipe.direction == "minimize" else max
            b = pick(complete, key=lambda t: t.value)
            where = Path(b.user_attrs.get("sweep_dir", out)) / "trials" / trial_dir(out, b.number).name
            best = {"trial": b.number, pipe.objective: b.value, "params": dict(b.params), "fixed": dict(space.fixed),
                    "worker": b.user_attrs.get("worker"), "model": str(where)}
            dest = out / "best"
            src = _locate_model(b, trial_dir(out, b.number), where, retrain, quiet)
            if src is not None:
                if previous_best != b.number or not dest.is_dir():
                    _copy_model(src, dest)
                outputs["best"] = dest
                if register:
                    from gengen.checkpoint import check_overwrite
                    from gengen.store import add_model, store_dir

                    target = store_dir() / register
                    if target.exists():  # this sweep's earlier best (same pipeline, checked): replace it
                        check_overwrite(target, pipe.checkpoint)
                        _copy_model(dest, target)
                    else:  # a new store model; the pipeline's default when it has none yet
                        add_model(dest, register)
                    outputs["registered"] = target
            else:
                notes.append(f"the best trial ({b.number}) ran on worker {b.user_attrs.get('worker')}; its model is "
                             f"in that machine's {where}")
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        counts = {s: sum(t.state.name.lower() == s for t in trials) for s in ("complete", "pruned", "fail")}
        summary = {
            "study": study.study_name, "storage": redact(url), "pipeline": pipe.name,
            "objective": pipe.objective, "direction": pipe.direction, "space": settings.space,
            "space_name": settings.space_name, "sampler": settings.sampler, "pruner": settings.pruner,
            "seed": settings.seed, "planned": int(study.user_attrs.get(PLANNED_ATTR, 0)),
            "finished": finished_count(trials), "counts": counts, "waiting": waiting, "running": running,
            "workers": sorted({str(t.user_attrs["worker"]) for t in trials if "worker" in t.user_attrs}),
            "best": best,
        }
        with atomic_path(summary_path) as tmp:
            tmp.write_text(json.dumps(summary, indent=1, default=str) + "\n")
        outputs["summary"] = summary_path
    result = SweepResult(study.study_name, redact(url), table, best, outputs, ran, waiting == 0 and running == 0,
                         notes)
    _report(result, summary, pipe, pca, quiet)
    return result


def _locate_model(trial, local: Path, where: Path, retrain, quiet: bool) -> Path | None:
    """The folder holding the best trial's model, or ``None`` when it is on another machine.

    ``where`` is the trial's model folder in the sweep folder of the worker that ran it (``local``
    when that worker shared this sweep folder). A worker on this machine that is still running writes
    its model when it runs out of trials: wait for it. A worker that is gone (killed before writing
    its model) leaves nothing: train the configuration again here (same seed: the same model on the
    CPU). On another machine the model is found only through a shared folder.
    """
    import socket
    import time

    def has(p: Path) -> bool:
        return (p / "config.json").is_file()

    if has(local):
        return local
    host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return where if has(where) else None
    deadline = time.monotonic() + 120  # writing a model takes seconds; a pid alive for longer is reused
    while _alive(int(pid)) and not has(where) and not has(local) and time.monotonic() < deadline:
        time.sleep(0.5)
    for p in (local, where):
        if has(p):
            return p
    if retrain is None:
        return None
    log(f"the best trial ({trial.number}) lost its model with its worker (pid {pid}); training it again here", quiet)
    retrain(trial, local)
    return local


def _alive(pid: int) -> bool:
    """Whether the worker ``pid`` may still write its model: another process that runs (not this one,
    not a killed one waiting to be reaped: :func:`gengen.runtime.pid_alive`)."""
    return pid != os.getpid() and pid_alive(pid)


def _previous_best(summary_path: Path) -> Any:
    """The best trial the previous summary.json names; ``None`` when there is none or it is unreadable
    (it is rewritten)."""
    try:
        summary = read_json(summary_path, "summary")
    except (OSError, GengenError):
        return None
    best = summary.get("best") if isinstance(summary, dict) else None
    return best.get("trial") if isinstance(best, dict) else None


def _report(result: SweepResult, summary: dict, pipe: Pipeline, pca, quiet: bool) -> None:
    if quiet:
        return
    c = summary["counts"]
    log(f"study {summary['study']!r}: {summary['finished']} of {summary['planned']} trials finished "
        f"({c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed) by {len(summary['workers'])} "
        f"worker(s); this worker ran {result.ran}" + ("" if result.complete else
                                                      f"; {summary['waiting']} waiting, {summary['running']} running"))
    b = result.best
    if b is not None:
        params = " ".join(f"{k}={v}" for k, v in b["params"].items())
        log(f"best: trial {b['trial']}, {pipe.objective} {b[pipe.objective]:.5g} with {params}")
    if pca is not None:
        log("latent size vs PCA (kNN accuracy of the best trial at each size, and of PCA at the same k):")
        for line in pca.to_string(index=False, float_format=lambda v: f"{v:.4g}").splitlines():
            log("  " + line)
    for note in result.notes:
        log(f"note: {note}")
    for key, path in result.outputs.items():
        log(f"{key}: {os.fspath(path)}")
