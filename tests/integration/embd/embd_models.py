"""embd_models.py - synthetic embedding models for the embedding tests, and
their reference vectors computed independently with numpy (float64).

write_gguf: a small GGUF v3 writer (metadata of the types the models need,
F32/F16 tensors, 32-byte alignment). make_bert / make_llama: random models
with a tokenizer (WordPiece for bert: whole lowercase words; SentencePiece
for llama: one piece per word plus <unk>/<s>/</s>), returned with their
weights as numpy arrays. bert_ref / llama_ref: the forward passes as the
architectures define them (bert: post-LayerNorm encoder with absolute
positions, token type 0, tanh GELU, non-causal attention; llama: RMSNorm,
RoPE on adjacent pairs, causal GQA attention, SwiGLU), pooled (mean / cls /
last) and L2-normalised."""
import struct

import numpy as np

GG_F32, GG_F16 = 0, 1
POOL = {"mean": 1, "cls": 2, "last": 3}


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _kv(key, val):
    out = _str(key)
    if isinstance(val, bool):
        return out + struct.pack("<IB", 7, 1 if val else 0)
    if isinstance(val, int):
        return out + struct.pack("<II", 4, val)
    if isinstance(val, float):
        return out + struct.pack("<If", 6, val)
    if isinstance(val, str):
        return out + struct.pack("<I", 8) + _str(val)
    if isinstance(val, tuple) and val[0] == "f32":
        return out + struct.pack("<IIQ", 9, 6, len(val[1])) + b"".join(struct.pack("<f", x) for x in val[1])
    if isinstance(val, tuple) and val[0] == "i32":
        return out + struct.pack("<IIQ", 9, 5, len(val[1])) + b"".join(struct.pack("<i", x) for x in val[1])
    if isinstance(val, list):
        return out + struct.pack("<IIQ", 9, 8, len(val)) + b"".join(_str(x) for x in val)
    raise TypeError(key)


def write_gguf(path, meta, tensors, f16=()):
    """tensors: list of (name, numpy array); arrays are row-major [rows, k]
    (GGUF ne = reversed shape). Names in f16 are stored as F16."""
    align = 32
    infos, blobs, off = b"", [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a, dtype=np.float32)
        typ = GG_F16 if name in f16 else GG_F32
        data = a.astype(np.float16).tobytes() if typ == GG_F16 else a.tobytes()
        ne = list(reversed(a.shape))
        infos += _str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        infos += struct.pack("<IQ", typ, off)
        pad = (-len(data)) % align
        blobs.append(data + b"\0" * pad)
        off += len(data) + pad
    kvs = b"".join(_kv(k, v) for k, v in meta.items())
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)) + kvs + infos
    head += b"\0" * ((-len(head)) % align)
    with open(path, "wb") as f:
        f.write(head)
        for b in blobs:
            f.write(b)


WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park", "sun", "was", "hot", "big", "red",
         "tree", "bird", "sang", "song", "to", "me", "and", "you", "we", "go", "home", "now", "fast", "slow",
         "blue", "sky", "hello", "world"]


def _rand(rng, *shape, scale=0.2):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def make_bert(path, pooling, seed=1, E=64, H=4, F=128, L=2, ctx=64, f16=False):
    rng = np.random.default_rng(seed)
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + ["\u2581" + w for w in WORDS] + ["ing", "s"]
    types = [3, 2, 3, 3] + [1] * (len(toks) - 4)
    V = len(toks)
    W = {"tok": _rand(rng, V, E, scale=0.5), "type": _rand(rng, 2, E, scale=0.5), "pos": _rand(rng, ctx, E, scale=0.5),
         "eln_w": 1 + _rand(rng, E, scale=0.1), "eln_b": _rand(rng, E, scale=0.1), "layers": []}
    tensors = [("token_embd.weight", W["tok"]), ("token_types.weight", W["type"]), ("position_embd.weight", W["pos"]),
               ("token_embd_norm.weight", W["eln_w"]), ("token_embd_norm.bias", W["eln_b"])]
    for li in range(L):
        lw = {"wq": _rand(rng, E, E), "wk": _rand(rng, E, E), "wv": _rand(rng, E, E), "wo": _rand(rng, E, E),
              "bq": _rand(rng, E, scale=0.1), "bk": _rand(rng, E, scale=0.1), "bv": _rand(rng, E, scale=0.1),
              "bo": _rand(rng, E, scale=0.1), "aln_w": 1 + _rand(rng, E, scale=0.1), "aln_b": _rand(rng, E, scale=0.1),
              "wu": _rand(rng, F, E), "bu": _rand(rng, F, scale=0.1), "wd": _rand(rng, E, F),
              "bd": _rand(rng, E, scale=0.1), "oln_w": 1 + _rand(rng, E, scale=0.1), "oln_b": _rand(rng, E, scale=0.1)}
        W["layers"].append(lw)
        p = "blk.%d." % li
        tensors += [(p + "attn_q.weight", lw["wq"]), (p + "attn_q.bias", lw["bq"]), (p + "attn_k.weight", lw["wk"]),
                    (p + "attn_k.bias", lw["bk"]), (p + "attn_v.weight", lw["wv"]), (p + "attn_v.bias", lw["bv"]),
                    (p + "attn_output.weight", lw["wo"]), (p + "attn_output.bias", lw["bo"]),
                    (p + "attn_output_norm.weight", lw["aln_w"]), (p + "attn_output_norm.bias", lw["aln_b"]),
                    (p + "ffn_up.weight", lw["wu"]), (p + "ffn_up.bias", lw["bu"]), (p + "ffn_down.weight", lw["wd"]),
                    (p + "ffn_down.bias", lw["bd"]), (p + "layer_output_norm.weight", lw["oln_w"]),
                    (p + "layer_output_norm.bias", lw["oln_b"])]
    meta = {"general.architecture": "bert", "general.name": "synthetic-bert", "bert.context_length": ctx,
            "bert.embedding_length": E, "bert.feed_forward_length": F, "bert.block_count": L,
            "bert.attention.head_count": H, "bert.attention.layer_norm_epsilon": 1e-12, "bert.attention.causal": False,
            "tokenizer.ggml.model": "bert", "tokenizer.ggml.tokens": toks, "tokenizer.ggml.token_type": ("i32", types),
            "tokenizer.ggml.cls_token_id": 2, "tokenizer.ggml.seperator_token_id": 3,
            "tokenizer.ggml.unknown_token_id": 1, "tokenizer.ggml.padding_token_id": 0}
    if pooling:
        meta["bert.pooling_type"] = POOL[pooling]
    mats = {n for n, a in tensors if a.ndim == 2 and n.startswith("blk.")}
    write_gguf(path, meta, tensors, f16=mats if f16 else ())
    W.update(E=E, H=H, pooling=pooling, vocab=toks, f16=f16)
    return W


def bert_tokenize(W, text):
    """[CLS] words [SEP] for texts made of whole vocabulary words."""
    ids = [2]
    for w in text.lower().split():
        ids.append(W["vocab"].index("\u2581" + w))
    return ids + [3]


def _ln(x, w, b, eps=1e-12):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


def _mat(W, key, lw):
    a = lw[key].astype(np.float64)
    return a.astype(np.float16).astype(np.float64) if W.get("f16") else a


def _pool(x, pooling):
    v = {"mean": x.mean(0), "cls": x[0], "last": x[-1]}[pooling]
    return v / np.linalg.norm(v)


def bert_ref(W, ids):
    E, H = W["E"], W["H"]
    hd = E // H
    n = len(ids)
    x = W["tok"][ids].astype(np.float64) + W["type"][0] + W["pos"][:n]
    x = _ln(x, W["eln_w"], W["eln_b"])
    for lw in W["layers"]:
        q = x @ _mat(W, "wq", lw).T + lw["bq"]
        k = x @ _mat(W, "wk", lw).T + lw["bk"]
        v = x @ _mat(W, "wv", lw).T + lw["bv"]
        att = np.zeros_like(q)
        for h in range(H):
            s = slice(h * hd, (h + 1) * hd)
            sc = q[:, s] @ k[:, s].T / np.sqrt(hd)
            sc = np.exp(sc - sc.max(-1, keepdims=True))
            sc /= sc.sum(-1, keepdims=True)
            att[:, s] = sc @ v[:, s]
        x = _ln(att @ _mat(W, "wo", lw).T + lw["bo"] + x, lw["aln_w"], lw["aln_b"])
        f = _gelu(x @ _mat(W, "wu", lw).T + lw["bu"]) @ _mat(W, "wd", lw).T + lw["bd"]
        x = _ln(f + x, lw["oln_w"], lw["oln_b"])
    return _pool(x, W["pooling"])


def make_llama(path, pooling, seed=2, E=64, H=4, HKV=2, F=96, L=2, ctx=128, f16=False, meta_extra=None):
    rng = np.random.default_rng(seed)
    toks = ["<unk>", "<s>", "</s>"] + ["\u2581" + w for w in WORDS]
    scores = [0.0, 0.0, 0.0] + [-float(i) for i in range(len(WORDS))]
    types = [2, 3, 3] + [1] * len(WORDS)
    V = len(toks)
    hd = E // H
    W = {"tok": _rand(rng, V, E, scale=0.5), "onorm": 1 + _rand(rng, E, scale=0.1), "layers": []}
    tensors = [("token_embd.weight", W["tok"]), ("output_norm.weight", W["onorm"])]
    for li in range(L):
        lw = {"anorm": 1 + _rand(rng, E, scale=0.1), "fnorm": 1 + _rand(rng, E, scale=0.1),
              "wq": _rand(rng, H * hd, E), "wk": _rand(rng, HKV * hd, E), "wv": _rand(rng, HKV * hd, E),
              "wo": _rand(rng, E, H * hd), "wg": _rand(rng, F, E), "wu": _rand(rng, F, E), "wd": _rand(rng, E, F)}
        W["layers"].append(lw)
        p = "blk.%d." % li
        tensors += [(p + "attn_norm.weight", lw["anorm"]), (p + "ffn_norm.weight", lw["fnorm"]),
                    (p + "attn_q.weight", lw["wq"]), (p + "attn_k.weight", lw["wk"]), (p + "attn_v.weight", lw["wv"]),
                    (p + "attn_output.weight", lw["wo"]), (p + "ffn_gate.weight", lw["wg"]),
                    (p + "ffn_up.weight", lw["wu"]), (p + "ffn_down.weight", lw["wd"])]
    meta = {"general.architecture": "llama", "general.name": "synthetic-llama", "llama.context_length": ctx,
            "llama.embedding_length": E, "llama.feed_forward_length": F, "llama.block_count": L,
            "llama.attention.head_count": H, "llama.attention.head_count_kv": HKV,
            "llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.rope.freq_base": 10000.0,
            "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": toks, "tokenizer.ggml.scores": ("f32", scores),
            "tokenizer.ggml.token_type": ("i32", types), "tokenizer.ggml.bos_token_id": 1,
            "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0}
    if pooling:
        meta["llama.pooling_type"] = POOL[pooling]
    meta.update(meta_extra or {})  # e.g. chat templates (test_chat_tool_use)
    mats = {n for n, a in tensors if a.ndim == 2 and n.startswith("blk.")}
    write_gguf(path, meta, tensors, f16=mats if f16 else ())
    W.update(E=E, H=H, HKV=HKV, pooling=pooling, vocab=toks, f16=f16)
    return W


def llama_tokenize(W, text):
    """<s> then one piece per word (SentencePiece with whole-word pieces)."""
    return [1] + [W["vocab"].index("\u2581" + w) for w in text.lower().split()]


def _rms(x, w, eps=1e-5):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _rope(x, n_heads, hd, base=10000.0):
    n = x.shape[0]
    x = x.reshape(n, n_heads, hd).copy()
    inv = base ** (-np.arange(0, hd, 2) / hd)
    ang = np.arange(n)[:, None] * inv[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., 0::2].copy(), x[..., 1::2].copy()
    x[..., 0::2] = a * c - b * s
    x[..., 1::2] = a * s + b * c
    return x.reshape(n, n_heads * hd)


def llama_ref(W, ids):
    E, H, HKV = W["E"], W["H"], W["HKV"]
    hd, g = E // H, H // HKV
    n = len(ids)
    x = W["tok"][ids].astype(np.float64)
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for lw in W["layers"]:
        h = _rms(x, lw["anorm"])
        q = _rope(h @ _mat(W, "wq", lw).T, H, hd)
        k = _rope(h @ _mat(W, "wk", lw).T, HKV, hd)
        v = h @ _mat(W, "wv", lw).T
        att = np.zeros_like(q)
        for hh in range(H):
            s, kv = slice(hh * hd, (hh + 1) * hd), slice((hh // g) * hd, (hh // g + 1) * hd)
            sc = q[:, s] @ k[:, kv].T / np.sqrt(hd) + mask
            sc = np.exp(sc - sc.max(-1, keepdims=True))
            sc /= sc.sum(-1, keepdims=True)
            att[:, s] = sc @ v[:, kv]
        x = x + att @ _mat(W, "wo", lw).T
        h = _rms(x, lw["fnorm"])
        gt = h @ _mat(W, "wg", lw).T
        x = x + ((gt / (1 + np.exp(-gt))) * (h @ _mat(W, "wu", lw).T)) @ _mat(W, "wd", lw).T
    return _pool(_rms(x, W["onorm"]), W["pooling"])
