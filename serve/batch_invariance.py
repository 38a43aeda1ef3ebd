"""Batch-invariant decoding: a prompt's greedy answer does not depend on which requests shared
its batch. Two things make a row's numbers depend on its batch in bf16 on CPU, and both are
removed here:
- left padding: attention over a padded row reduces over more (masked) keys, in other blocks, so
  its sums round differently. Each row attends over its own tokens only, one SDPA call per row.
- a lone row: a one-row matmul takes the matrix-vector kernel, which sums in another order than
  the matrix-matrix one every larger batch takes. A one-row input runs as two rows (a zero row
  added and dropped).
Checked on this project's CPUs (greedy tokens equal alone, in batches of 4 and 16, with any
neighbours). On a GPU the padding part holds; cuBLAS may still choose kernels by batch size."""

from __future__ import annotations

from typing import Any

ATTENTION = "ragtune_rows"


def attention_implementation() -> str:
    """The name to pass as `attn_implementation`, registered with transformers on first use."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    if ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION, row_attention)
        # A mask is always built (none is skipped as "causal, no padding"): rows read their extent off it.
        AttentionMaskInterface.register(ATTENTION, eager_mask)
    return ATTENTION


def row_attention(
    module,
    query,
    key,
    value,
    attention_mask,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
):
    """transformers attention function: each row of a left-padded batch attends over its own
    keys only (from the first key any of its queries sees), through SDPA, with its slice of the
    additive mask (0 where it attends). query [B, H, Lq, D], key/value [B, Hkv, L, D]; returns
    ([B, Lq, H, D], None). Pad queries come out zero: no real token attends to them."""
    import torch.nn.functional as F

    if kwargs.get("softcap") is not None:
        raise ValueError("batch-invariant attention does not support softcap; set batch_invariant: false")
    batch, heads, query_length, head_dim = query.shape
    key_length = key.shape[2]
    attends = attention_mask[:, 0, :, :key_length] == 0  # [B, Lq, L]
    starts = attends.any(dim=1).int().argmax(dim=-1).tolist()
    groups = heads // key.shape[1]
    out = query.new_zeros(batch, query_length, heads, head_dim)
    for row, start in enumerate(starts):
        first_query = max(0, start - (key_length - query_length))
        keys, values = key[row : row + 1, :, start:], value[row : row + 1, :, start:]
        if query_length == 1:  # decoding: the query heads of a key head side by side, one call
            q = query[row : row + 1].reshape(1, key.shape[1], groups, head_dim)
            attended = F.scaled_dot_product_attention(q, keys, values, scale=scaling)
            out[row] = attended.reshape(1, heads, head_dim)
            continue
        mask = attends[row : row + 1, None, first_query:, start:]
        attended = F.scaled_dot_product_attention(
            query[row : row + 1, :, first_query:],
            keys,
            values,
            attn_mask=mask,
            scale=scaling,
            enable_gqa=True,
        )
        out[row, first_query:] = attended[0].transpose(0, 1)
    return out, None


def decode_single_rows_as_two(model) -> None:
    """Every linear layer of `model` runs a one-row input as two rows (the second zero), so a
    lone request takes the same matmul kernel as a batch."""
    import torch

    for layer in model.modules():
        if isinstance(layer, torch.nn.Linear):
            layer.forward = _two_rows(layer.forward)


def _two_rows(forward):
    import torch

    def run(x):
        if x.numel() != x.shape[-1]:
            return forward(x)
        row = x.reshape(1, -1)
        return forward(torch.cat([row, torch.zeros_like(row)]))[:1].reshape(*x.shape[:-1], -1)

    return run
