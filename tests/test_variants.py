"""Shapes, reference equivalences, determinism and a training smoke test for every variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lib.core.attention import (
    AttentionSpec,
    BigBirdAttention,
    BlockLinformerAttention,
    CausalSelfAttention,
    DenseSynthesizerAttention,
    available_variants,
    bigbird_key_blocks,
    build_attention,
)
from lib.core.model import GPT, GPTConfig

SPEC = AttentionSpec(n_embd=32, n_head=4, block_size=128)
VARIANTS = available_variants()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes_for_every_length_up_to_block_size(name):
    torch.manual_seed(0)
    module = build_attention(name, SPEC)
    for length in (1, 2, 15, 16, 17, 33, 100, 127, 128):
        for mode in (module.train, module.eval):
            mode()
            y = module(torch.randn(3, length, SPEC.n_embd))
            assert y.shape == (3, length, SPEC.n_embd)
            assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_short_sequence_equals_prefix_of_long_one(name):
    """T < block_size is not a different model: it is the prefix of the full-length output."""
    torch.manual_seed(0)
    module = build_attention(name, SPEC).eval()
    x = torch.randn(2, 128, SPEC.n_embd)
    with torch.no_grad():
        full = module(x)
        for length in (1, 16, 50, 127):
            torch.testing.assert_close(module(x[:, :length]), full[:, :length])


@pytest.mark.parametrize("name", VARIANTS)
def test_deterministic_given_seed_in_training_mode(name):
    spec = AttentionSpec(n_embd=32, n_head=4, block_size=128, attn_dropout=0.3, resid_dropout=0.3)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        module = build_attention(name, spec).train()
        x = torch.randn(2, 100, 32)
        y = module(x)
        y.square().sum().backward()
        outputs.append((y.detach(), [p.grad.clone() for p in module.parameters()]))
    assert torch.equal(outputs[0][0], outputs[1][0])
    for g0, g1 in zip(outputs[0][1], outputs[1][1], strict=True):
        assert torch.equal(g0, g1)


@pytest.mark.parametrize("name", ["synthesizer", "linformer", "bigbird"])
def test_longer_than_block_size_is_refused(name):
    module = build_attention(name, AttentionSpec(n_embd=32, n_head=4, block_size=64))
    with pytest.raises(ValueError, match="exceeds block_size"):
        module(torch.randn(1, 65, 32))


def _copy_qkv_proj(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    dst.qkv.load_state_dict(src.qkv.state_dict())
    dst.proj.load_state_dict(src.proj.state_dict())


def test_linformer_with_identity_compression_is_exact_attention():
    """rows = block_len and identity compression: summaries are the keys, so it is vanilla."""
    torch.manual_seed(0)
    vanilla = CausalSelfAttention(SPEC).eval()
    lin = BlockLinformerAttention(SPEC, block_len=16, rows=16).eval()
    _copy_qkv_proj(vanilla, lin)
    with torch.no_grad():
        eye = torch.eye(16).expand(SPEC.n_head, 16, 16)
        lin.compress_k.copy_(eye)
        lin.compress_v.copy_(eye)
        for length in (128, 70):
            x = torch.randn(2, length, 32)
            torch.testing.assert_close(lin(x), vanilla(x), rtol=1e-5, atol=1e-6)


def test_linformer_block_sees_only_completed_blocks():
    """Perturbing block 1 changes block 1 and later outputs, never block 0."""
    torch.manual_seed(0)
    lin = BlockLinformerAttention(SPEC, block_len=16, rows=2).eval()
    x = torch.randn(1, 64, 32)
    changed = x.clone()
    changed[:, 20] += 1.0
    with torch.no_grad():
        diff = (lin(x) - lin(changed)).abs().amax(dim=(0, 2))
    assert (diff[:20] == 0).all() and (diff[20:] > 0).all()


def test_bigbird_with_full_window_is_exact_attention():
    torch.manual_seed(0)
    vanilla = CausalSelfAttention(SPEC).eval()
    bird = BigBirdAttention(SPEC, block_len=16, window=8).eval()
    _copy_qkv_proj(vanilla, bird)
    with torch.no_grad():
        for length in (128, 70):
            x = torch.randn(2, length, 32)
            torch.testing.assert_close(bird(x), vanilla(x), rtol=1e-5, atol=1e-6)


def test_bigbird_equals_dense_attention_under_its_mask():
    """The block gather computes exactly dense attention restricted to the BigBird mask."""
    torch.manual_seed(0)
    bird = BigBirdAttention(SPEC, block_len=16, window=1, n_global=1, n_random=1).eval()
    index, valid = bigbird_key_blocks(8, 1, 1, bird.random_blocks)
    block_mask = torch.zeros(8, 8, dtype=torch.bool)
    for j in range(8):
        block_mask[j, index[j][valid[j]]] = True
    # Each block attends to at most 3 blocks: global, one random, previous, itself (<= 4).
    assert (block_mask.sum(1) <= 4).all() and not block_mask.all()
    mask = block_mask.repeat_interleave(16, 0).repeat_interleave(16, 1)
    mask &= torch.ones(128, 128, dtype=torch.bool).tril()
    x = torch.randn(2, 128, 32)
    with torch.no_grad():
        q, k, v = bird.heads_qkv(x)
        ref = bird.output(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        torch.testing.assert_close(bird(x), ref, rtol=1e-5, atol=1e-6)


def test_bigbird_random_blocks_are_seeded_earlier_blocks_and_differ_between_layers():
    spec = AttentionSpec(n_embd=32, n_head=4, block_size=1024)
    torch.manual_seed(5)
    a, b = BigBirdAttention(spec), BigBirdAttention(spec)
    torch.manual_seed(5)
    a_again = BigBirdAttention(spec)
    assert torch.equal(a.random_blocks, a_again.random_blocks)
    assert not torch.equal(a.random_blocks, b.random_blocks)
    rows = torch.arange(len(a.random_blocks))[:, None]
    chosen = a.random_blocks >= 0
    # Random blocks lie strictly before the window and after the global block.
    assert ((a.random_blocks >= a.n_global) | ~chosen).all()
    assert ((a.random_blocks < rows - a.window) | ~chosen).all()
    assert "random_blocks" in a.state_dict()  # checkpoints keep the layout


def test_synthesizer_weights_ignore_other_positions_content():
    """Row t of the synthesizer's attention is a function of x_t alone (plus the mask)."""
    torch.manual_seed(0)
    synth = DenseSynthesizerAttention(SPEC).eval()
    captured = []
    handle = synth.attn_drop.register_forward_hook(lambda m, i, o: captured.append(o))
    x = torch.randn(1, 40, 32)
    changed = x.clone()
    changed[:, :39] = torch.randn(1, 39, 32)  # everything but the last position
    with torch.no_grad():
        synth(x)
        synth(changed)
    handle.remove()
    assert torch.equal(captured[0][:, :, 39], captured[1][:, :, 39])
    assert not torch.equal(captured[0][:, :, 38], captured[1][:, :, 38])


@pytest.mark.parametrize("name", VARIANTS)
def test_tiny_gpt_learns_a_fixed_batch(name):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=17, block_size=64, n_layer=2, n_head=4, n_embd=32,
                       dropout=0.1, attn_dropout=0.1, attention=name)
    model = GPT(config)
    idx = torch.randint(1, 17, (4, 64))
    targets = torch.roll(idx, shifts=-1, dims=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        _, loss = model(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.9 * losses[0], losses


def test_block_attention_accepts_a_non_contiguous_kernel_output(monkeypatch):
    """CUDA's attention kernels can return a permuted layout; the blocked variants must cope."""
    import torch.nn.functional as F

    from lib.core.attention import common as variants

    real = F.scaled_dot_product_attention

    def permuted(*args, **kwargs):
        y = real(*args, **kwargs)
        return y.transpose(1, 2).contiguous().transpose(1, 2)  # same values, other strides

    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 4, 8, 16), torch.randn(2, 3, 4, 8, 16), torch.randn(2, 3, 4, 8, 16)
    allowed = torch.ones(4, 8, 8, dtype=torch.bool)
    expected = variants.attend_blocks(q, k, v, allowed, 0.0)
    monkeypatch.setattr(variants.F, "scaled_dot_product_attention", permuted)
    torch.testing.assert_close(variants.attend_blocks(q, k, v, allowed, 0.0), expected)


def test_rope_scores_depend_on_the_offset_only():
    """Rotary embeddings' defining property: shift query and key positions alike and every
    score stays the same (to float32 rounding), with no position table anywhere."""
    from lib.core.attention import RotaryAttention, rotary_angles, rotate

    torch.manual_seed(0)
    module = build_attention("rope", SPEC)
    assert isinstance(module, RotaryAttention)
    head_dim = SPEC.n_embd // SPEC.n_head
    q, k = torch.randn(2, head_dim), torch.randn(2, head_dim)

    def score(m: int, n: int) -> torch.Tensor:
        cos_m, sin_m = rotary_angles(torch.tensor([m]), head_dim)
        cos_n, sin_n = rotary_angles(torch.tensor([n]), head_dim)
        return (rotate(q, cos_m, sin_m) * rotate(k, cos_n, sin_n)).sum(-1)

    for m, n in ((5, 2), (40, 40), (100, 3)):
        for shift in (1, 17, 250):
            torch.testing.assert_close(score(m + shift, n + shift), score(m, n), atol=2e-5, rtol=1e-5)
    assert not torch.allclose(score(5, 2), score(5, 3))  # the offset itself does matter
    # Rotations keep lengths: the pair (x_i, x_{i + D/2}) turns, it does not stretch.
    cos, sin = rotary_angles(torch.arange(7), head_dim)
    x = torch.randn(7, head_dim)
    torch.testing.assert_close(rotate(x, cos, sin).norm(dim=-1), x.norm(dim=-1))


def test_rope_module_scores_are_the_same_wherever_the_sequence_starts():
    """The module's own projections: one sequence placed at positions 0.. and at 9.. gives
    the same matrix of query-key scores (cached decoding counts positions in a padded batch
    and relies on this)."""
    torch.manual_seed(0)
    module = build_attention("rope", SPEC).eval()
    x = torch.randn(1, 20, SPEC.n_embd)
    with torch.no_grad():
        q0, k0, _ = module.project(x, 0)
        q9, k9, _ = module.project(x, 9)
    # Scores of the same contents at positions shifted by 9 are the same matrix.
    torch.testing.assert_close(q0 @ k0.transpose(-1, -2), q9 @ k9.transpose(-1, -2), atol=1e-4, rtol=1e-4)


def test_rope_model_has_no_position_table_and_others_keep_theirs():
    rope = GPT(GPTConfig(vocab_size=17, block_size=64, n_layer=2, n_head=4, n_embd=32, attention="rope"))
    vanilla = GPT(GPTConfig(vocab_size=17, block_size=64, n_layer=2, n_head=4, n_embd=32))
    assert rope.config.positions == "rotary" and rope.pos_emb is None
    assert vanilla.config.positions == "learned"
    assert vanilla.num_parameters() - rope.num_parameters() == 64 * 32
    with pytest.raises(ValueError, match="would see no positions"):
        GPTConfig(vocab_size=17, attention="vanilla", positions="rotary")
    # A stored config from before the field existed still means the learned table.
    assert GPTConfig(**{k: v for k, v in vanilla.config.to_dict().items() if k != "positions"}).positions == "learned"


def test_attend_is_sdpa_on_the_cpu_with_and_without_dropout():
    """`attend` changes the kernel only for dropout on a GPU; on the CPU it is SDPA exactly."""
    from lib.core.attention import attend

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 16, 8) for _ in range(3))
    mask = torch.rand(16, 16) > 0.3
    assert torch.equal(attend(q, k, v, is_causal=True),
                       F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert torch.equal(attend(q, k, v, attn_mask=mask),
                       F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    torch.manual_seed(1)
    ours = attend(q, k, v, dropout_p=0.3, is_causal=True)
    torch.manual_seed(1)
    reference = F.scaled_dot_product_attention(q, k, v, dropout_p=0.3, is_causal=True)
    assert torch.equal(ours, reference)


def test_no_attention_dropout_reaches_a_fused_kernel_directly():
    """Every SDPA call that may drop out is inside `attend` (fused dropout broke training
    under CUDA graphs); direct calls elsewhere are dropout-free."""
    import ast
    import importlib
    import inspect
    import pkgutil

    import lib.core.attention as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for function in ast.walk(ast.parse(inspect.getsource(module))):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "scaled_dot_product_attention"
                        and any(kw.arg == "dropout_p" for kw in node.keywords)):
                    found.append(function.name)
    assert found and set(found) == {"attend"}, found
