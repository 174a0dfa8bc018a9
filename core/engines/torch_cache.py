"""The key/value cache of a mixed batch for the transformers engine: prefill by length group, one left-padded buffer.

Prefill work is the sum of the real prompt lengths (RAG 817 + hybrid 817 + base 37 + ft 37 = 1,708 tokens), not
rows x the longest (3,268): each group of equal-length prompts is prefilled unpadded, and its cache is copied into
one preallocated left-padded buffer (masked zeros on the left). Decoding then runs as one batch with per-row
positions, so each row sees exactly its own prompt, as if it had been generated alone.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class PrefilledBatch:
    """Every row prefilled, ready to decode together. Tensors; `longest` prompt positions are filled."""

    cache: Any  # a transformers Cache over [rows, heads, capacity, dim] buffers
    mask: Any  # [rows, capacity] attention mask: each row's own prompt, then the positions decoding fills
    positions: Any  # [rows, 1] each row's next position: its prompt length
    first_logits: Any  # [rows, vocab] float logits of each row's first new token
    longest: int


def prefill_left_padded(forward: Callable, prompt_ids: list[list[int]], names: list[str], capacity: int, device: str,
                        cancel: threading.Event) -> PrefilledBatch | None:
    """Prefill each group of equal-length prompts (longest first) with `forward(ids, cache, row_names)`, and gather
    the groups' caches into one buffer of `capacity` positions. None when `cancel` is set between groups."""
    import torch
    from transformers import DynamicCache

    rows = len(prompt_ids)
    lengths = [len(ids) for ids in prompt_ids]
    longest = max(lengths)
    groups: dict[int, list[int]] = {}
    for row, length in enumerate(lengths):
        groups.setdefault(length, []).append(row)

    buffers = None
    first_logits = [None] * rows
    for length, members in sorted(groups.items(), reverse=True):
        if cancel.is_set():
            return None
        ids = torch.tensor([prompt_ids[r] for r in members], device=device)
        out = forward(ids, DynamicCache(), [names[r] for r in members])
        for slot, row in enumerate(members):
            first_logits[row] = out.logits[slot, -1].float()
        cache = out.past_key_values
        if buffers is None:
            buffers = []
            for layer in cache.layers:
                k, v = layer.keys, layer.values
                buffers.append((k.new_zeros(rows, k.shape[1], capacity, k.shape[3]), v.new_zeros(rows, v.shape[1], capacity, v.shape[3])))
        index = torch.tensor(members, device=device)
        for (buf_k, buf_v), layer in zip(buffers, cache.layers):
            buf_k[index, :, longest - length : longest] = layer.keys
            buf_v[index, :, longest - length : longest] = layer.values
        del out, cache
    mask = torch.ones(rows, capacity, dtype=torch.long, device=device)
    mask[:, :longest] = 0
    for row, length in enumerate(lengths):
        mask[row, longest - length : longest] = 1
    return PrefilledBatch(cache=buffer_cache(buffers, capacity, longest), mask=mask,
                          positions=torch.tensor(lengths, device=device).unsqueeze(1),
                          first_logits=torch.stack(first_logits), longest=longest)


def buffer_cache(keys_values: list[tuple], capacity: int, filled: int):
    """A transformers Cache over preallocated [rows, heads, capacity, dim] buffers, `filled` positions used.

    DynamicLayer grows by torch.cat, copying the whole cache at every step (4 rows x 830 tokens x 30 layers:
    ~150 MB a step); this layer writes the new position in place and hands attention a view.
    """
    from transformers.cache_utils import Cache, DynamicLayer

    class _BufferLayer(DynamicLayer):
        def __init__(self, keys, values):
            super().__init__()
            self.buf_k, self.buf_v, self.used = keys, values, filled
            self.dtype, self.device = keys.dtype, keys.device
            self.keys, self.values = keys[:, :, :filled], values[:, :, :filled]
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            end = self.used + key_states.shape[-2]
            self.buf_k[:, :, self.used : end] = key_states
            self.buf_v[:, :, self.used : end] = value_states
            self.used = end
            self.keys, self.values = self.buf_k[:, :, :end], self.buf_v[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.used

    return Cache(layers=[_BufferLayer(k, v) for k, v in keys_values])
