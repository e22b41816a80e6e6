"""Causal self-attention, chosen by name from one registry.

`base` holds the registry and vanilla attention; each research variant lives in its own module
(`synthesizer`, `linformer`, `bigbird`, `rope`) and registers itself when imported, which this
package does below, so `build_attention(name, spec)` knows every variant.
"""

from lib.core.attention.base import (
    AttentionSpec,
    CausalSelfAttention,
    attend,
    available_variants,
    build_attention,
    check_spec,
    register_attention,
)
from lib.core.attention.bigbird import BigBirdAttention, bigbird_key_blocks
from lib.core.attention.common import attend_blocks
from lib.core.attention.linformer import BlockLinformerAttention, NaiveLinformerAttention
from lib.core.attention.rope import RotaryAttention, rotary_angles, rotate
from lib.core.attention.synthesizer import DenseSynthesizerAttention

__all__ = [
    "AttentionSpec", "CausalSelfAttention", "attend", "available_variants", "build_attention",
    "check_spec", "register_attention",
    "BigBirdAttention", "BlockLinformerAttention", "DenseSynthesizerAttention",
    "NaiveLinformerAttention", "RotaryAttention", "attend_blocks", "bigbird_key_blocks",
    "rotary_angles", "rotate",
]
