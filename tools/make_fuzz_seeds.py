#!/usr/bin/env python3
"""Writes small valid GGUF files to seed the GGUF fuzzer, and a libFuzzer dictionary.

Usage: make_fuzz_seeds.py SEED_DIR [DICT_PATH]

Standard library only (struct). The files cover every metadata value type (nested arrays, empty
strings and arrays included), tensors of each type ponder reads (F32, F16, BF16 and the quantized
types Q4_0..Q6_K, IQ4_NL, IQ4_XS) with odd sizes, general.alignment = 64, GGUF version 2, a vocab-only file, byte-level BPE vocabularies with
each pre-tokenizer ponder knows, and an empty file. The layout is
ggml's: tensor data in order, each padded to the alignment.
"""
import os
import struct
import sys

MAGIC = b"GGUF"
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FORMATS = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
                  BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
# ggml type id: (block, bytes), as in ggml's type traits
QUANT_TYPES = {2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),          # Q4_0 Q4_1 Q5_0 Q5_1
               10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),  # Q2_K Q3_K Q4_K Q5_K
               14: (256, 210), 20: (32, 18), 23: (256, 136)}                    # Q6_K IQ4_NL IQ4_XS
TYPE_SIZE = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_BF16: (1, 2), GGML_Q8_0: (32, 34), **QUANT_TYPES}


def enc_string(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def enc_payload(vtype, value):
    """The value's bytes without its type; arrays are (element_type, [items])."""
    if vtype == STRING:
        return enc_string(value)
    if vtype == ARRAY:
        elem, items = value
        return struct.pack("<IQ", elem, len(items)) + b"".join(enc_payload(elem, x) for x in items)
    return struct.pack(SCALAR_FORMATS[vtype], value)


def enc_kv(key, vtype, value):
    return enc_string(key) + struct.pack("<I", vtype) + enc_payload(vtype, value)


def pad(n, alignment):
    return (n + alignment - 1) // alignment * alignment


def tensor_bytes(ne, ttype, seed):
    block, size = TYPE_SIZE[ttype]
    n = 1
    for d in ne:
        n *= d
    assert ne[0] % block == 0
    n_bytes = n // block * size
    return bytes((i * 37 + seed) & 0xFF for i in range(n_bytes))


def gguf(kvs, tensors, alignment=32, version=3):
    """kvs: [(key, type, value)]; tensors: [(name, ne, ggml_type)]."""
    header = MAGIC + struct.pack("<IQQ", version, len(tensors), len(kvs))
    header += b"".join(enc_kv(*kv) for kv in kvs)
    data = b""
    for i, (name, ne, ttype) in enumerate(tensors):
        blob = tensor_bytes(ne, ttype, i + 1)
        header += enc_string(name) + struct.pack("<I", len(ne))
        header += b"".join(struct.pack("<Q", d) for d in ne)
        header += struct.pack("<IQ", ttype, len(data))
        data += blob + b"\0" * (pad(len(blob), alignment) - len(blob))
    header += b"\0" * (pad(len(header), alignment) - len(header))
    return header + data


ALL_TYPES = [
    ("general.architecture", STRING, "llama"),
    ("t.u8", U8, 200), ("t.i8", I8, -100), ("t.u16", U16, 65535), ("t.i16", I16, -32768),
    ("t.u32", U32, 4000000000), ("t.i32", I32, -2000000000), ("t.f32", F32, -1.5),
    ("t.bool", BOOL, 1), ("t.string", STRING, "hello"), ("t.empty", STRING, ""),
    ("t.u64", U64, 2**64 - 1), ("t.i64", I64, -2**63), ("t.f64", F64, 1e308),
    ("t.array.empty", ARRAY, (U8, [])),
    ("t.array.strings", ARRAY, (STRING, ["", "a", "\u4e2d"])),
    ("t.array.bools", ARRAY, (BOOL, [1, 0])),
    ("t.array.f32", ARRAY, (F32, [0.5, -2.0])),
    ("t.array.nested", ARRAY, (ARRAY, [(I32, [-1, 7]), (I32, []), (STRING, ["deep"]),
                                       (ARRAY, [(U64, []), (BOOL, [1])])])),
]

ODD_TENSORS = [
    ("blk.0.f32", [7, 3], GGML_F32),
    ("f16", [5], GGML_F16),
    ("bf16", [3, 1, 2], GGML_BF16),
    ("q8_0", [64, 3, 1, 1], GGML_Q8_0),
] + [("quant_%d" % t, [block * 2, 3], t) for t, (block, _) in QUANT_TYPES.items()]


def seeds():
    llama = [("general.architecture", STRING, "llama"), ("llama.embedding_length", U32, 32),
             ("llama.block_count", U32, 1), ("llama.attention.head_count", U32, 2),
             ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
             ("tokenizer.ggml.model", STRING, "llama"),
             ("tokenizer.ggml.tokens", ARRAY, (STRING, ["<unk>", "<s>", "</s>", "a", "b"])),
             ("tokenizer.ggml.scores", ARRAY, (F32, [0.0, 0.0, 0.0, -1.0, -2.0])),
             ("tokenizer.ggml.token_type", ARRAY, (I32, [2, 3, 3, 1, 1])),
             ("tokenizer.ggml.add_bos_token", BOOL, 1)]
    # Byte-level BPE vocabularies (GPT-2 alphabet: U+0120 is a space) with each pre-tokenizer.
    bpe_tokens = ["a", "b", "\u0120", "ab", "\u0120ab", "1", "2", "<|endoftext|>", "<think>", "</think>"]
    def bpe(pre):
        return [("tokenizer.ggml.model", STRING, "gpt2"), ("tokenizer.ggml.pre", STRING, pre),
                ("tokenizer.ggml.tokens", ARRAY, (STRING, bpe_tokens)),
                ("tokenizer.ggml.token_type", ARRAY, (I32, [1] * 7 + [3, 4, 4])),
                ("tokenizer.ggml.merges", ARRAY, (STRING, ["a b", "\u0120 ab"])),
                ("tokenizer.ggml.bos_token_id", U32, 7), ("tokenizer.ggml.eos_token_id", U32, 7),
                ("tokenizer.ggml.add_bos_token", BOOL, 1)]
    bpe_seeds = {"bpe_%s.gguf" % pre: gguf(bpe(pre), []) for pre in ("gpt-2", "llama-bpe", "qwen2", "deepseek-r1-qwen")}
    return {
        **bpe_seeds,
        "all_types.gguf": gguf(ALL_TYPES, ODD_TENSORS),
        "align64.gguf": gguf([("general.alignment", U32, 64)] + ALL_TYPES[:4], ODD_TENSORS, alignment=64),
        "version2.gguf": gguf(ALL_TYPES[:3], ODD_TENSORS[:2], version=2),
        "llama_like.gguf": gguf(llama, [("token_embd.weight", [32, 5], GGML_F16),
                                        ("output_norm.weight", [32], GGML_F32),
                                        ("blk.0.attn_q.weight", [32, 32], GGML_Q8_0),
                                        ("output.weight", [32, 5], GGML_BF16)]),
        "vocab_only.gguf": gguf(llama, []),
        "empty.gguf": gguf([], []),
    }


DICTIONARY = {
    "magic": b"GGUF", "alignment_key": b"general.alignment", "arch_key": b"general.architecture",
    "u64_32": struct.pack("<Q", 32), "u64_max": struct.pack("<Q", 2**64 - 1),
    "u64_2_40": struct.pack("<Q", 2**40), "u32_max": struct.pack("<I", 2**32 - 1),
    "u32_64": struct.pack("<I", 64), "u32_3": struct.pack("<I", 3),
}
DICTIONARY.update({"type_%d" % t: struct.pack("<I", t) for t in range(14)})
DICTIONARY.update({"qtype_%d" % t: struct.pack("<I", t) for t in QUANT_TYPES})
DICTIONARY.update({"ggml_%d" % t: struct.pack("<I", t) for t in (8, 12, 30, 31)})


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, blob in seeds().items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
    if len(sys.argv) == 3:
        with open(sys.argv[2], "w") as f:
            for name, value in DICTIONARY.items():
                f.write('%s="%s"\n' % (name, "".join("\\x%02x" % b for b in value)))


if __name__ == "__main__":
    main()
