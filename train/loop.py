"""`train_loop_per_worker`: DeepSpeed (× LoRA) on the process group Ray Train set up.

Every rank runs this. Rank 0 logs to MLflow; losses are averaged over ranks so every rank
takes the same early-stopping decision.
"""

from __future__ import annotations

import inspect
import logging
import math
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ragtune.cluster.resources import set_torch_threads
from ragtune.train.config import TrainJobConfig
from ragtune.train.data import loss_window, pad_batch
from ragtune.train.deepspeed_setup import deepspeed_config, lr_lambda

STATE_TAG = "state"  # DeepSpeed checkpoint tag inside each Ray checkpoint
MODEL_DIR = "model"  # the loadable adapter / model inside each Ray checkpoint
# Progress goes to the logger Ray Train sends to the console and its worker log. A print goes
# there too, but twice on the console when stdout is wrapped (as in a Ray Tune trial).
log = logging.getLogger(__name__)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Set up → train with periodic eval/checkpoints → final checkpoint. Resumes if asked."""
    import deepspeed
    import ray.train

    config: TrainJobConfig = loop_config["job"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(config.seed + rank)
    set_torch_threads(loop_config["torch_threads"])

    tokenizer, model = _load_model(config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    ds_config = deepspeed_config(config, world)
    client_optimizer = (
        None
        if "optimizer" in ds_config
        else torch.optim.AdamW(trainable, lr=config.optimizer.lr, weight_decay=config.optimizer.weight_decay)
    )
    total_steps = loop_config["total_steps"]
    engine, _, _, scheduler = deepspeed.initialize(
        model=model,
        model_parameters=trainable,
        optimizer=client_optimizer,
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(
            opt, lr_lambda(config.optimizer, total_steps)
        ),
        config=ds_config,
        dist_init_required=False,  # Ray Train already initialised the process group
    )

    state = {"step": 0, "best_val_loss": math.inf, "evals_without_gain": 0}
    if (checkpoint := ray.train.get_checkpoint()) is not None:
        with checkpoint.as_directory() as directory:
            _, client_state = engine.load_checkpoint(directory, tag=STATE_TAG, custom_load_fn=_load_module)
        # client_state also carries DeepSpeed's own keys; take back only ours
        state.update({key: (client_state or {})[key] for key in state if key in (client_state or {})})
        if rank == 0:
            log.info(f"resumed from step {state['step']}")

    tracker = _tracker(loop_config, rank)
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("validation")
    pad_id, device = tokenizer.pad_token_id, engine.device
    accepted = _forward_parameters(model)
    windowed = "logits_to_keep" in accepted

    scorer = _answer_scorer(config, tokenizer, model, world)

    def collate(batch: dict) -> dict[str, torch.Tensor]:
        return {key: value.to(device) for key, value in pad_batch(batch, pad_id).items() if key in accepted}

    window = {"loss": 0.0, "tokens": 0, "started": time.perf_counter(), "micro": 0, "wait": 0.0}
    stop = False
    while not stop and state["step"] < total_steps:
        batches = train_shard.iter_torch_batches(batch_size=config.micro_batch_size, collate_fn=collate)
        for batch in _timed(batches, window):
            loss = _loss(engine, batch, windowed)
            engine.backward(loss)
            engine.step()
            window["loss"] += loss.item()
            window["tokens"] += int(batch["attention_mask"].sum())
            window["micro"] += 1
            if not engine.is_gradient_accumulation_boundary():
                continue
            state["step"] += 1
            step = state["step"]
            metrics: dict[str, float] = {}
            if step % config.log_every_steps == 0 or step == total_steps:
                metrics.update(_window_metrics(window, scheduler, device))
            if step % config.eval_every_steps == 0 or step == total_steps:
                metrics.update(_evaluate(engine, val_shard, config, collate, windowed, scorer))
                stop = _early_stop(state, metrics["val_loss"], config)
            if metrics and tracker is not None:
                tracker.log_metrics(metrics, step)
            if rank == 0 and "train_loss" in metrics:
                log.info(_progress_line(step, total_steps, metrics))
            last = stop or step >= total_steps
            # Only checkpoints go through ray.train.report: its queue holds one result and the
            # controller drains it every ~2 s, so reporting each log line stalls fast steps.
            # Step metrics reach MLflow directly.
            if step % config.checkpoint_every_steps == 0 or last:
                _save_and_report(engine, config, state, {**metrics, "step": step}, rank)
            if last:
                break


def _load_model(config: TrainJobConfig):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(config.base_model, **extra)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(config.base_model, dtype=torch.float32, **extra)
    if config.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = config.lora
        model = get_peft_model(
            model,
            LoraConfig(
                task_type="CAUSAL_LM",
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
                layers_to_transform=lora.layers_to_transform,
            ),
        )
    return tokenizer, model


def _load_module(src: dict, dst: torch.nn.Module) -> None:
    """Load a checkpoint's module state. An adapter's checkpoint holds only what trains (the
    frozen base comes from base_model), so only frozen weights may be missing from it."""
    loaded = dst.load_state_dict(src, strict=False)
    frozen = {name for name, param in dst.named_parameters() if not param.requires_grad}
    mismatched = [key for key in loaded.missing_keys if key not in frozen] + list(loaded.unexpected_keys)
    if mismatched:
        raise RuntimeError(f"the checkpoint does not match the model being trained: {mismatched[:5]}")


def _forward_parameters(model) -> set[str]:
    """The keyword arguments the (base) model's forward takes: position ids and a logits window
    are passed only to models that take them."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def _loss(engine, batch: dict[str, torch.Tensor], windowed: bool) -> torch.Tensor:
    """The batch's mean loss over its answer tokens; `windowed`, with logits computed only over
    the labelled window (the same loss, without projecting the prompt onto the vocabulary)."""
    if windowed:
        keep = loss_window(batch["labels"])
        batch = {**batch, "labels": batch["labels"][:, -keep:], "logits_to_keep": keep}
    return engine(**batch).loss


def _timed(batches, window: dict):
    """Yield the batches, adding the seconds spent waiting for each to window["wait"]."""
    iterator = iter(batches)
    while True:
        started = time.perf_counter()
        batch = next(iterator, None)
        if batch is None:
            return
        window["wait"] += time.perf_counter() - started
        yield batch


def _window_metrics(window: dict, scheduler, device: torch.device) -> dict[str, float]:
    """Mean train loss, tokens/s and the share of time spent waiting for input, over all ranks
    since the last log line; resets the window."""
    values = [window["loss"], window["micro"], window["tokens"], window["wait"]]
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    elapsed = time.perf_counter() - window["started"]
    window.update(loss=0.0, tokens=0, micro=0, wait=0.0, started=time.perf_counter())
    return {
        "train_loss": float(totals[0] / max(totals[1], 1)),
        "tokens_per_s": float(totals[2] / elapsed),
        "input_wait_frac": float(totals[3] / dist.get_world_size() / elapsed),
        "lr": float(scheduler.get_last_lr()[0]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


@torch.no_grad()
def _evaluate(engine, val_shard, config: TrainJobConfig, collate, windowed: bool, scorer) -> dict[str, float]:
    """Token-weighted validation loss and perplexity over every rank's shard; with a scorer, also
    the mean token F1 of greedy answers to the first validation prompts."""
    from ragtune.train.answer_eval import prompts_and_references

    engine.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=engine.device)
    to_answer: list = []
    wanted = 0 if scorer is None else math.ceil(scorer.config.max_examples / dist.get_world_size())
    for batch in val_shard.iter_torch_batches(batch_size=config.micro_batch_size, collate_fn=collate):
        answer_tokens = int((batch["labels"][:, 1:] != -100).sum())
        loss = _loss(engine, batch, windowed).item()
        totals[:2] += torch.tensor([loss * answer_tokens, answer_tokens], device=engine.device)
        if len(to_answer) < wanted:
            to_answer += prompts_and_references(batch)[: wanted - len(to_answer)]
    if to_answer:
        totals[2:] += torch.tensor(
            [scorer.f1_sum(engine.module, to_answer, engine.device), len(to_answer)], device=engine.device
        )
    engine.train()
    dist.all_reduce(totals)
    val_loss = float(totals[0] / max(totals[1], 1))
    metrics = {"val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 50))}
    if scorer is not None:
        metrics["val_answer_f1"] = float(totals[2] / max(totals[3], 1))
    return metrics


def _answer_scorer(config: TrainJobConfig, tokenizer, model, world: int):
    """The validation answer scorer when the job asks for answer F1, else None."""
    if config.answer_eval is None:
        return None
    from ragtune.train.answer_eval import AnswerScorer

    synced = config.deepspeed.zero_stage == 3 and world > 1
    return AnswerScorer(tokenizer, model.generation_config, config.answer_eval, synced)


def _early_stop(state: dict, val_loss: float, config: TrainJobConfig) -> bool:
    if val_loss < state["best_val_loss"]:
        state.update(best_val_loss=val_loss, evals_without_gain=0)
        return False
    state["evals_without_gain"] += 1
    patience = config.early_stopping_patience
    return patience is not None and state["evals_without_gain"] >= patience


def _save_and_report(engine, config: TrainJobConfig, state: dict, metrics: dict, rank: int):
    """DeepSpeed state (all ranks) plus a loadable model (gathered) in one Ray checkpoint. With
    LoRA the state leaves out the frozen base weights (~0.5 GB for a 135M model, written and
    copied at every checkpoint): resume loads them from base_model."""
    import ray.train

    with tempfile.TemporaryDirectory() as directory:
        engine.save_checkpoint(
            directory,
            tag=STATE_TAG,
            client_state=dict(state),
            exclude_frozen_parameters=config.lora is not None,
        )
        _save_model(engine, Path(directory) / MODEL_DIR, config, rank)
        checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint)


def _save_model(engine, out: Path, config: TrainJobConfig, rank: int) -> None:
    """Rank 0 writes the adapter (or full model); under ZeRO-3 the shards are gathered first."""
    module = engine.module
    if config.deepspeed.zero_stage == 3:
        import deepspeed

        params = [p for p in module.parameters() if config.lora is None or p.requires_grad]
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            if rank == 0:
                _write_model(module, out, config)
    elif rank == 0:
        _write_model(module, out, config)


def _write_model(module, out: Path, config: TrainJobConfig) -> None:
    if config.lora is not None:
        state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if "lora_" in k}
        module.save_pretrained(out, state_dict=state)
    else:
        module.save_pretrained(out)


def _tracker(loop_config: dict, rank: int):
    """MLflow client for rank 0 (one run per job, created by the driver); None elsewhere."""
    if rank != 0 or not loop_config.get("mlflow_run_id"):
        return None
    from ragtune.core.tracking import RunLogger

    return RunLogger(loop_config["tracking_uri"], loop_config["mlflow_run_id"])


def _progress_line(step: int, total: int, metrics: dict[str, float]) -> str:
    parts = [f"step {step}/{total}", f"loss {metrics['train_loss']:.4f}"]
    if "val_loss" in metrics:
        parts.append(f"val_loss {metrics['val_loss']:.4f}")
    if "val_answer_f1" in metrics:
        parts.append(f"val_answer_f1 {metrics['val_answer_f1']:.3f}")
    parts += [
        f"lr {metrics['lr']:.2e}",
        f"{metrics['tokens_per_s']:.0f} tok/s",
        f"input wait {metrics['input_wait_frac']:.0%}",
    ]
    return " | ".join(parts)
