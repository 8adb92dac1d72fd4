"""The Python entry points: ``train(config, out)``, ``resume(run_dir)`` and ``evaluate_run(run_dir)``."""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from cbns.api_checks import check_evaluate_arguments, check_resume_arguments, check_train_arguments
from cbns.config import TrainConfig, save_yaml
from cbns.config.warmup_reach import warmup_warning
from cbns.data.history import HistoryContext
from cbns.data.interactions import Interactions
from cbns.data.loading import load_data
from cbns.distributed.context import DistContext, init_distributed
from cbns.errors import CbnsError, NonFiniteError, Opt
from cbns.evaluation.evaluator import Evaluator
from cbns.evaluation.prior_selection import select_prior, set_prior
from cbns.evaluation.ranking import evaluate_split
from cbns.machine import peak_memory, reset_peak_memory, resolve_device
from cbns.model.build import build_model
from cbns.model.popularity_prior import parse_prior
from cbns.model.two_tower import TwoTower
from cbns.objective.build import build_objective
from cbns.runs.atomic import remove_all_leftovers
from cbns.runs.checkpoint import checkpoint_files, peek, read_latest
from cbns.runs.disk_space import check_free_space, estimate_state_bytes
from cbns.runs.model_file import MODEL_FILE, model_path, read_model_file
from cbns.runs.resume import check_same_run, data_fingerprint, refuse_changes, refuse_unfinished
from cbns.runs.run_dir import load_run_config, prepare_out_dir, resolved, save_run
from cbns.runs.run_lock import RunLock
from cbns.runs.source_record import check_data
from cbns.runs.staging import RunSlot, is_finished, live_dir, publish, settle
from cbns.training.callbacks.base import Callback
from cbns.training.callbacks.checkpointer import Checkpointer
from cbns.training.callbacks.drift import drift_callback, save_drift
from cbns.training.callbacks.early_stopping import EarlyStopping
from cbns.training.memory_need import check_memory
from cbns.training.recipe import resolve as resolve_recipe
from cbns.training.result import TrainResult
from cbns.training.stop_request import StopAtStepEnd
from cbns.training.trainer import Trainer
from cbns.training.training_state import load_training_state


def train(config: TrainConfig | None = None, out: str | Path | None = None, progress: bool = True,
          verbose: bool = True, callbacks: Sequence[Callback] = (), *, user_tower: nn.Module | None = None,
          item_tower: nn.Module | None = None, loss: nn.Module | None = None,
          overwrite: bool = False) -> TrainResult:
    """Train, validate, test once; with ``out``, write the run directory (see :mod:`cbns.runs.run_dir`),
    checkpointing every ``config.run.checkpoint_every`` steps and after every epoch (single process;
    see docs/resume.md).

    A directory ``out`` that holds a finished run is refused unless ``overwrite`` is True; then the
    new run trains beside it and replaces it only once it has finished (:mod:`cbns.runs.staging`).
    A run that fails before training starts leaves nothing behind in ``out``.

    Bring your own parts: ``user_tower`` / ``item_tower`` replace the towers the config names (any
    ``nn.Module`` with the tower interface, ``forward(ids [B], context=None) -> [B, D]``; see
    :class:`cbns.model.towers.base.Tower`), and ``loss`` replaces the objective the config names
    (a :class:`cbns.objective.cross_batch_loss.CrossBatchSoftmaxLoss`, or any module called as
    ``loss(user_emb, item_emb, item_ids, item_bias=..., encode_items=...)``). The run directory is
    then written as usual (embeddings, metrics); ``cbns evaluate`` cannot rebuild custom towers
    from it, serving works (docs/library.md).

    Under ``torchrun`` (or the command line's launcher, :mod:`cbns.cli.launch`) every process calls
    this and trains as one rank (see :mod:`cbns.distributed`); all return the same result, and
    rank 0 alone writes ``out``.
    With ``config.run.drift_every`` > 0 the run also records item-embedding drift
    (:mod:`cbns.training.callbacks.drift`) into ``drift.json`` and ``drift.png``.
    """
    config = check_train_arguments(config, out, callbacks, user_tower, item_tower, loss)
    config = resolved((config if config is not None else TrainConfig()).validate())
    ctx = init_distributed()
    try:
        writes = out is not None and ctx.is_main
        parts = Parts(user_tower, item_tower, loss)
        if writes:
            with RunSlot(Path(out), overwrite) as slot:
                out_dir = prepare_out_dir(slot.dir)
                refuse_unfinished(out_dir)
                result = _run(ctx, config, out_dir, progress, verbose, callbacks, resume=False, parts=parts,
                              slot=slot)
        else:
            result = _run(ctx, config, None, progress, verbose, callbacks, resume=False, parts=parts)
        ctx.barrier()
    finally:
        ctx.close()
    return result


def resume(run: str | Path, progress: bool = True, verbose: bool = True, callbacks: Sequence[Callback] = (),
           *, user_tower: nn.Module | None = None, item_tower: nn.Module | None = None,
           loss: nn.Module | None = None, **options) -> TrainResult:
    """Continue the run in directory ``run`` from its latest checkpoint, with its saved configuration.

    ``options`` may set ``threads`` and ``checkpoint_every``; any other option that differs from the
    saved run raises :class:`CbnsError`. A run trained with your own towers or loss is resumed by
    passing the same (freshly built) ones again. The finished run equals the uninterrupted one (see
    docs/resume.md for when this holds bit for bit). Single-process runs only.
    """
    check_resume_arguments(run, callbacks, user_tower, item_tower, loss)
    run = Path(run)
    settle(run)
    live = live_dir(run)  # the staging directory of a run that replaces a finished one, else run
    saved = load_run_config(live)
    with RunLock(run, "resume"), RunLock(live, "resume") if live != run else nullcontext():
        if is_finished(live):
            if live != run:  # it finished, but was not published yet
                publish(live, run)
            raise CbnsError(Opt("resume", run), ": this run finished already (metrics.json is there); "
                            "nothing to resume")
        config = refuse_changes(live, saved, options)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise CbnsError(Opt("resume", run), ": resuming works in a single process; distributed runs are not "
                            "checkpointed (run without torchrun/", Opt("nproc"), ")")
        result = _run(DistContext(), config, prepare_out_dir(live), progress, verbose, callbacks, resume=True,
                      parts=Parts(user_tower, item_tower, loss))
        if live != run:
            publish(live, run)
        return result


@dataclass
class Parts:
    """What a caller built instead of the config: towers and the loss (None: from the config)."""

    user_tower: nn.Module | None = None
    item_tower: nn.Module | None = None
    loss: nn.Module | None = None

    @property
    def custom_towers(self) -> bool:
        return self.user_tower is not None or self.item_tower is not None


def assemble(config: TrainConfig, data: Interactions, parts: Parts | None = None, ctx: DistContext | None = None
             ) -> tuple[TwoTower, nn.Module]:
    """The model and the objective of a run: the caller's parts where given, else what ``config``
    names (towers from :data:`cbns.registry.USER_TOWERS` / ``ITEM_TOWERS``, the objective from
    :func:`cbns.objective.build.build_objective`). Options left ``auto`` are resolved for ``data``
    first (:mod:`cbns.training.recipe`)."""
    ctx, parts = ctx or DistContext(), parts or Parts()
    config, _ = resolve_recipe(config, data.num_items, len(data.train), parts.item_tower, parts.user_tower)
    model = build_model(config, data.num_users, data.num_items, data.user_features, data.item_features,
                        user_tower=parts.user_tower, item_tower=parts.item_tower)
    if parts.loss is None:
        objective = build_objective(config, data.item_counts(), gather_across_ranks=ctx.distributed,
                                    process_group=ctx.group)
    else:
        objective = parts.loss
        if hasattr(objective, "gather_across_ranks") and ctx.distributed:
            objective.gather_across_ranks, objective.process_group = True, ctx.group
    return model, objective


def _run(ctx: DistContext, config: TrainConfig, out_dir: Path | None, progress: bool, verbose: bool,
         callbacks: Sequence[Callback], resume: bool, parts: Parts, slot: RunSlot | None = None) -> TrainResult:
    data = load_data(config, progress=progress and ctx.is_main)
    config, recipe = resolve_recipe(config, data.num_items, len(data.train), parts.item_tower, parts.user_tower)
    if not parts.custom_towers:  # the estimate knows the registered towers only
        check_memory(config, data.num_users, data.num_items, len(data.train))
    if ctx.is_main and (warning := warmup_warning(config, len(data.train), config.data.source)):
        print(warning, file=sys.stderr)
    model, objective = assemble(config, data, parts, ctx)
    contexts = history_context(config, data, model)
    stopping = [EarlyStopping(config.evaluation.ks[0], config.training.patience)] if len(data.valid) else []
    callbacks = [*stopping, *callbacks]  # early stopping first: the other callbacks see its decision
    if slot is not None:  # first of all: the run has started once a step ran (bad towers fail there)
        callbacks.insert(0, _Started(slot))
    drift = drift_callback(config, data.num_items)
    if drift is not None:
        callbacks.append(drift)
    checkpointer = None
    if out_dir is not None and not ctx.distributed:
        meta = {"config": config.to_dict(), "data": data_fingerprint(data), "recipe": recipe}
        checkpointer = Checkpointer(out_dir, config.run.checkpoint_every, meta)
        callbacks += [checkpointer, StopAtStepEnd(checkpointer)]
    trainer = Trainer(config, data, model, objective, progress=progress, verbose=verbose, callbacks=callbacks,
                      contexts=contexts, ctx=ctx)
    evaluator = Evaluator(config, data, contexts, ctx, settle=trainer.settle)
    reset_peak_memory(trainer.device)
    if checkpointer is not None:
        if resume:  # the saved config is resolved: the decisions are the first part's, from its checkpoint
            recipe = _restore(trainer, out_dir, config, checkpointer.meta["data"], verbose) or recipe
            checkpointer.meta["recipe"] = recipe
        check_free_space(out_dir, _bytes_needed(out_dir, model, objective))
        save_yaml(config, out_dir / "config.yaml")
    _say(verbose and ctx.is_main, f"data {data.summary()}")  # the data, then the recipe, then training
    for line in recipe:
        _say(verbose and ctx.is_main, f"recipe: {line}")
    try:
        fixed = parse_prior(config.evaluation.popularity_prior)  # None: auto, no prior until one is chosen
        set_prior(model, data, config, fixed or 0.0)
        state = trainer.fit(evaluator)  # ends with the best weights restored
    except NonFiniteError as exc:
        raise NonFiniteError(*exc.parts, "; ", *_last_good(out_dir)) from None
    prior, valid = select_prior(model, data, config, evaluator, state.best_valid(), verbose and ctx.is_main)
    test = evaluator.evaluate(model, "test")
    trainer.to_cpu()
    result = TrainResult.of(state, valid, test, prior, evaluator.summary())
    if out_dir is not None:
        save_drift(out_dir, drift, config, steps_per_epoch=-(-len(data.train) // config.sampler.batch_size))
        towers = {side: (f"custom: {type(getattr(model, side + '_tower')).__name__}"
                         if getattr(parts, side + "_tower") is not None else config[side + "_tower"])
                  for side in ("user", "item")}
        metrics = {**result.to_dict(), "dataset": data.summary(),
                   "dataset_rows": data.rows.to_dict() if data.rows is not None else None,
                   "world_size": ctx.world_size, "split": config.data.split, "towers": towers,
                   "precision": config.training.precision, "recipe": recipe, "peak_memory": peak_memory(trainer.device)}
        save_run(out_dir, config, data, model, objective, metrics,
                 user_context=contexts.for_users("test") if contexts is not None else None,
                 custom_towers=parts.custom_towers)
        for path in checkpoint_files(out_dir):
            path.unlink()
        remove_all_leftovers(out_dir)
        if slot is not None:
            slot.finish()
    return result


class _Started(Callback):
    """Tells the run's slot that training has started: a failure before that leaves nothing behind."""

    def __init__(self, slot: RunSlot):
        self.slot = slot

    def on_step_end(self, trainer) -> None:
        self.slot.started()

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.slot.started()


def history_context(config: TrainConfig, data, model: TwoTower) -> HistoryContext | None:
    """The per-batch and evaluation histories, when the user tower reads one (else None)."""
    if not getattr(model.user_tower, "needs_history", False):
        return None
    return HistoryContext(data, config.model.max_history)


def _restore(trainer: Trainer, run: Path, config: TrainConfig, fingerprint: dict, verbose: bool
             ) -> list[str] | None:
    """Load the newest readable checkpoint of ``run`` into ``trainer`` (none: start at step 0);
    returns the recipe lines the run started with (None when it has no checkpoint)."""
    found = read_latest(run)
    if found is None:
        _say(verbose, f"resuming {run}: no checkpoint was written yet, starting from step 0")
        return None
    payload, path, problems = found
    for problem in problems:
        print(f"cbns: warning: {problem}; using {path.name} instead", file=sys.stderr)
    check_same_run(path, payload, config, fingerprint)
    load_training_state(trainer, payload)
    s = trainer.state
    where = "training done, testing" if s.done else f"epoch {s.epoch + 1}, batch {s.batch}"
    _say(verbose, f"resuming {run} from {path.name}: step {trainer.global_step} ({where})")
    return payload.get("recipe")


def _bytes_needed(out: Path, model, objective) -> int:
    """Peak disk use still to come: three training states (previous, latest, one being written) and
    the final outputs, minus what the files about to be replaced already take."""
    weights = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    needed = 3 * estimate_state_bytes(model, objective) + 2 * weights
    existing = [*checkpoint_files(out), out / MODEL_FILE, out / "user_embeddings.npy", out / "item_embeddings.npy"]
    return max(needed - sum(p.stat().st_size for p in existing if p.is_file()), 0)


def _last_good(out_dir: Path | None) -> tuple:
    """What a stopped run kept, as message parts."""
    files = checkpoint_files(out_dir) if out_dir is not None else []
    if not files:
        return ("no checkpoint had been written",) if out_dir is not None else ("nothing was saved (no ", Opt("out"),
                                                                                 ")")
    return (f"the last good checkpoint {files[0]} (step {peek(files[0])['step']}) is intact",)


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(message, file=sys.stderr)


def evaluate_run(run: str | Path, device: str = "auto") -> dict[str, dict[str, float]]:
    """Recompute the valid and test metrics of a run directory from its model file, on ``device``
    (``auto``: CUDA when present; the weights load on any device). :class:`CbnsError` naming the
    file when the data differ from what the run recorded it was trained on
    (:mod:`cbns.runs.source_record`)."""
    check_evaluate_arguments(run, device)
    run = Path(run)
    config = load_run_config(run)
    where = resolve_device(device)
    check_data(run, config)  # an edited file is named before it is parsed
    data = load_data(config)
    check_data(run, config, data)
    state = read_model_file(run)
    if state.get("custom_towers"):
        raise CbnsError(f"{model_path(run)}: the run was trained with towers built in Python, which cbns cannot "
                        f"rebuild from {run / 'config.yaml'}; load the weights into your towers, or serve the "
                        f"exported embeddings (cbns recommend, cbns.Recommender)")
    model = build_model(config, data.num_users, data.num_items, data.user_features, data.item_features)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:  # weights of another model: one line, not a traceback
        detail = str(exc).strip().splitlines()[-1].strip()
        raise CbnsError(f"{model_path(run)}: does not fit the model of {run / 'config.yaml'} ({detail})") from None
    model.to(where)
    contexts = history_context(config, data, model)
    parts = ("valid", "test") if len(data.valid) else ("test",)
    return {part: evaluate_split(model, data, part, config.evaluation.ks,
                                 user_context=contexts.for_users(part) if contexts is not None else None)
            for part in parts}
