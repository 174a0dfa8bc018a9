"""Rows to token ids for training: the chat template, answer-only labels, packing (shared by plan_run and the worker)."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def encode_row(tokenizer, row: dict, max_length: int, completion_only_loss: bool = True) -> dict:
    """input_ids/labels for one row via the model's chat template; prompt tokens get label -100.

    If the row is too long, the *input* text is shortened so the answer (what we teach) always fits.
    """
    from core.datasets.rows import make_row, row_messages

    current = row
    for _ in range(6):
        messages = row_messages(current)
        prompt_ids = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        full_ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        if len(full_ids) <= max_length or not current.get("input"):
            break
        keep = max(0, int(len(current["input"]) * max_length / len(full_ids) * 0.9) - 20)
        current = make_row(current["instruction"], current["input"][:keep], current["output"], current.get("source"))
    if full_ids[: len(prompt_ids)] != prompt_ids:
        # a template that renders the prompt differently once an answer follows (e.g. drops a generation header):
        # mask the longest common prefix, so no answer token is ever masked and no prompt token past it is taught
        common = next((i for i, (a, b) in enumerate(zip(full_ids, prompt_ids)) if a != b), min(len(full_ids), len(prompt_ids)))
        log.warning("The chat template renders the prompt differently with an answer; masking the %d shared tokens", common)
        prompt_len = min(common, len(full_ids) - 1)
    else:
        prompt_len = len(prompt_ids)
    full_ids = list(full_ids)[:max_length]
    labels = list(full_ids)
    if completion_only_loss:
        labels[: min(prompt_len, len(labels))] = [-100] * min(prompt_len, len(labels))
    return {"input_ids": full_ids, "labels": labels}


def pack_examples(examples: list[dict], max_length: int) -> list[dict]:
    """Concatenate examples into blocks of up to max_length tokens (labels kept per token).

    Each block carries position ids that restart at every example: the padding-free collator turns them into a
    block-diagonal attention mask, so an example never attends to the one before it in its block.
    """
    blocks, ids, labels, positions = [], [], [], []
    for example in examples:
        if ids and len(ids) + len(example["input_ids"]) > max_length:
            blocks.append({"input_ids": ids, "labels": labels, "position_ids": positions})
            ids, labels, positions = [], [], []
        ids = ids + example["input_ids"]
        labels = labels + example["labels"]
        positions = positions + list(range(len(example["input_ids"])))
    if ids:
        blocks.append({"input_ids": ids[:max_length], "labels": labels[:max_length], "position_ids": positions[:max_length]})
    return blocks
