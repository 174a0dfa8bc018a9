"""What the Trainer sees each step: encoded rows, batches (padded or packed) and the answer-only loss.

Split from core/training/worker.py, which runs the process; these are the pieces bench/train_bench.py times
against the TRL recipe, with the measurements behind each choice in their docstrings.
"""
from __future__ import annotations

import logging

log = logging.getLogger("core.training.worker")


def build_examples(tokenizer, rows, training):
    from core.training.examples import encode_row, pack_examples

    examples = [encode_row(tokenizer, row, training.max_length, training.completion_only_loss) for row in rows]
    examples = [e for e in examples if any(label != -100 for label in e["labels"])]
    if training.packing:
        examples = pack_examples(examples, training.max_length)
    return examples


def answer_positions(labels):
    """True where the next token is a label: the only positions whose logits the loss reads."""
    import torch

    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != -100
    return keep


class TokenCountingCollator:
    """Pads a batch to its longest row and counts real (non-pad) tokens for tokens/s.

    `keep_logits`: also pass `logits_to_keep`, so the vocabulary projection (49k x 576 on SmolLM2, a fifth of the
    model) and the softmax run only where a label follows; with answer-only loss that skips the prompts. Measured on
    the 2-core EPYC, forward+backward of 3 batches of 2 rows: 16.1 s -> 13.7 s in fp32, 11.3 s -> 10.6 s in bf16.
    """

    def __init__(self, pad_id: int, keep_logits: bool = False):
        self.pad_id = pad_id
        self.keep_logits = keep_logits
        self.tokens = 0

    def __call__(self, batch):
        import torch

        width = max(len(e["input_ids"]) for e in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, e in enumerate(batch):
            n = len(e["input_ids"])
            ids[i, :n] = torch.tensor(e["input_ids"])
            labels[i, :n] = torch.tensor(e["labels"])
            mask[i, :n] = 1
        self.tokens += int(mask.sum())
        out = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        if self.keep_logits:
            out["logits_to_keep"] = answer_positions(labels)
        return out


class PaddingFreeCollator:
    """For packed rows: one row per batch, the blocks concatenated, position ids restarting at each example.

    With no attention mask, transformers builds a block-diagonal causal mask from the position ids (masking_utils
    `find_packed_sequence_indices`), so each example attends only to itself; `packed_attention_ok` checks this for the
    loaded model before the collator is used. Not the default: for batches of 2 squad36 rows it was slower than padding
    (14.6 s vs 13.7 s, fp32): the longer row's attention and its materialised mask cost more than the ~8% pad saved.
    """

    def __init__(self):
        self.tokens = 0

    def __call__(self, batch):
        import torch

        ids, labels, positions = [], [], []
        for e in batch:
            ids += e["input_ids"]
            positions += e.get("position_ids") or range(len(e["input_ids"]))
            labels += e["labels"]
        positions_t = torch.tensor([positions], dtype=torch.long)
        labels_t = torch.tensor([labels], dtype=torch.long)
        labels_t[positions_t == 0] = -100  # an example's first token: nothing of its own precedes it
        self.tokens += len(ids)
        return {"input_ids": torch.tensor([ids], dtype=torch.long), "position_ids": positions_t, "labels": labels_t,
                "logits_to_keep": answer_positions(labels_t)}


def completion_loss(outputs, labels, num_items_in_batch=None):
    """Mean next-token cross-entropy over the labelled tokens (as the model's own loss), from the kept logits only.

    Trainer passes `num_items_in_batch` (labels[..., 1:] != -100 over all accumulated batches), so gradient
    accumulation averages over tokens, not over batches. Logits are upcast: under bf16 autocast they arrive in bf16.
    """
    import torch.nn.functional as F

    targets = labels[..., 1:]
    logits = outputs.logits
    if logits.dim() == 3:  # a model that computed every position's logits
        logits = logits[:, :-1][targets != -100]
    targets = targets[targets != -100]
    loss = F.cross_entropy(logits.float(), targets, reduction="sum")
    return loss / (num_items_in_batch if num_items_in_batch is not None else max(1, targets.numel()))


def _logits_agree(model, packed: bool) -> bool:
    """An example's logits computed alone vs through `logits_to_keep` (packed after another example if `packed`)."""
    import inspect

    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return False
    was_training = model.training
    model.eval()  # no dropout: both passes must be deterministic
    try:
        device = next(model.parameters()).device
        first, second = torch.arange(3, 10, device=device), torch.arange(20, 26, device=device)
        pick = torch.tensor([False, True, False, True, True, False], device=device)
        with torch.no_grad():
            alone = model(input_ids=second[None]).logits[0].float()[pick]
            if packed:
                positions = torch.cat([torch.arange(len(first)), torch.arange(len(second))]).to(device)
                keep = torch.cat([torch.zeros_like(first, dtype=torch.bool), pick])[None]
                kept = model(input_ids=torch.cat([first, second])[None], position_ids=positions[None], logits_to_keep=keep).logits
            else:
                kept = model(input_ids=second[None], logits_to_keep=pick[None]).logits
        kept = kept.float().reshape(-1, kept.shape[-1])
    except Exception as error:  # a model whose forward refuses these inputs: the plain path
        log.info("logits_to_keep / packed rows unavailable for this model: %s", error)
        return False
    finally:
        model.train(was_training)
    if kept.shape != alone.shape:
        return False
    exact = next(model.parameters()).dtype == torch.float32
    return bool((alone - kept).abs().max() <= (1e-3 if exact else 5e-2) * alone.abs().max())


def logits_subset_ok(model) -> bool:
    """Does this model compute logits only at the positions a boolean `logits_to_keep` names, and the same ones?"""
    return _logits_agree(model, packed=False)


def packed_attention_ok(model) -> bool:
    """Does this model keep packed examples apart (position ids restart = new sequence), with `logits_to_keep`?

    Checked on the loaded model in a few milliseconds, called as training calls it. A model that let packed examples
    see each other would train on text that never existed. transformers builds the block mask only without a
    key/value cache, so `model.config.use_cache` must be False.
    """
    return _logits_agree(model, packed=True)
