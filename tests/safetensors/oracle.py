"""Independent oracle for ckpt/safetensors: this script writes safetensors files with struct + json
(the format as the huggingface/safetensors README defines it, not our code), has oracle_tool read
them, and compares every value bit for bit; then it parses the files our writer wrote and checks
layout, metadata and values (BF16 against torch's own fp32 -> bf16 rounding).

    python3 oracle.py ORACLE_TOOL WORKDIR
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import torch

DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": None}


def write_file(path, tensors, metadata=None, pad=True, reverse=False):
    """tensors: {name: (dtype string, shape, raw little-endian bytes)}; data in (reverse) name order."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    order = sorted(tensors, reverse=reverse)
    for name in order:
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header).encode("utf-8")
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:  # tensor by tensor: a model of a few GB is never one bytes object
        f.write(struct.pack("<Q", len(text)) + text)
        for name in order:
            f.write(tensors[name][2])


def bf16(values):
    """fp32 values as torch rounds them to bf16: (raw bytes, the bf16 values widened to fp32)."""
    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).to(torch.bfloat16)
    return t.view(torch.int16).numpy().tobytes(), t.float().numpy()


def same_bits(a, b):
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def python_files(work, rng):
    """Writes files of our own; returns {path: {tensor: expected fp32 array}}."""
    expected = {}
    a = rng.standard_normal((5, 7)).astype(np.float32)
    b16, b_wide = bf16(rng.standard_normal((16, 8)) * 100)
    h = np.array([[1.0, -2.0, 65504.0], [6e-8, 6.1e-5, -0.0], [np.inf, 0.333, -1e-7]], dtype=np.float16)
    tensors = {"a": ("F32", a.shape, a.tobytes()), "w.bf16": ("BF16", (16, 8), b16),
               "h": ("F16", h.shape, h.tobytes()), "scalar": ("F32", (), np.float32(4.5).tobytes()),
               "empty": ("BF16", (0, 4), b"")}
    single = os.path.join(work, "py_single.safetensors")
    write_file(single, tensors, {"format": "pt", "note": "unpadded, reverse order"}, pad=False, reverse=True)
    expected[single] = {"a": a, "w.bf16": b_wide.reshape(16, 8), "h": h.astype(np.float32),
                        "scalar": np.array(4.5, np.float32), "empty": np.zeros((0, 4), np.float32)}
    shard_dir = os.path.join(work, "py_sharded")
    os.makedirs(shard_dir)
    weight_map, exp = {}, {}
    for i in range(2):
        name = "model-%05d-of-00002.safetensors" % (i + 1)
        x = rng.standard_normal((4 + i, 3)).astype(np.float32)
        write_file(os.path.join(shard_dir, name), {"layer.%d" % i: ("F32", x.shape, x.tobytes())})
        weight_map["layer.%d" % i], exp["layer.%d" % i] = name, x
    with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 108}, "weight_map": weight_map}, f)
    expected[shard_dir] = exp
    return expected


def check_our_reader(tool, work, rng):
    for path, tensors in python_files(work, rng).items():
        out = os.path.join(work, "read-" + os.path.basename(path))
        run = subprocess.run([tool, "read", path, out], capture_output=True, text=True, check=True)
        row_bytes = 0
        for name, want in tensors.items():
            got = np.fromfile(os.path.join(out, name + ".f32"), dtype="<f4").reshape(want.shape)
            assert same_bits(got, want), (path, name, got, want)
            if want.ndim and want.shape[0] >= 3:
                rows = np.fromfile(os.path.join(out, name + ".rows.f32"), dtype="<f4").reshape((2,) + want.shape[1:])
                assert same_bits(rows, want[1:3]), (path, name, "rows [1, 3)")
                row_bytes += 2 * int(np.prod(want.shape[1:])) * (2 if name in ("w.bf16", "h") else 4)
        assert run.stdout.strip() == "bytes_read %d" % row_bytes, (run.stdout, row_bytes)
        print("ok   our reader on", os.path.basename(path), "(%d tensors)" % len(tensors))


def parse(path):
    """Our own strict parse of a file our writer wrote: {name: (dtype, array as stored)}, metadata."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, "%s: header length %d is not a multiple of 8" % (path, n)
    text = raw[8:8 + n].decode("utf-8")
    assert text == text.rstrip(" ").ljust(n) and text.rstrip(" ").endswith("}"), "padding must be spaces"
    header = json.loads(text)
    meta = header.pop("__metadata__")
    assert meta["format"] == "pt" and all(isinstance(v, str) for v in meta.values()), meta
    data, end, out = raw[8 + n:], 0, {}
    for name in sorted(header, key=lambda k: header[k]["data_offsets"]):
        t = header[name]
        b, e = t["data_offsets"]
        assert b == end, (path, name, "not contiguous")
        size = 2 if t["dtype"] == "BF16" else 4
        assert e - b == size * int(np.prod(t["shape"], dtype=np.int64)), (path, name)
        dtype = "<u2" if t["dtype"] == "BF16" else "<f4"
        out[name] = (t["dtype"], np.frombuffer(data[b:e], dtype=dtype).reshape(t["shape"]))
        end = e
    assert end == len(data), (path, "trailing bytes")
    assert list(out) == sorted(out), (path, "data not in sorted-name order")
    return out, meta


def check_our_writer(tool, work):
    out = os.path.join(work, "ours")
    subprocess.run([tool, "write", out], check=True)
    source = {f[:-4]: np.fromfile(os.path.join(out, "source", f), dtype="<f4")
              for f in os.listdir(os.path.join(out, "source"))}
    f32, meta = parse(os.path.join(out, "our_f32.safetensors"))
    assert meta["producer"] == "oracle_tool" and sorted(f32) == sorted(source)
    for name, (dtype, arr) in f32.items():
        assert dtype == "F32" and same_bits(arr.reshape(-1), source[name]), name
    b16, _ = parse(os.path.join(out, "our_bf16.safetensors"))
    for name, (dtype, arr) in b16.items():
        want = np.frombuffer(bf16(source[name])[0], dtype="<u2")
        assert dtype == "BF16" and np.array_equal(arr.reshape(-1), want), name
    index = json.load(open(os.path.join(out, "sharded", "model.safetensors.index.json")))
    files = sorted(set(index["weight_map"].values()))
    assert files == ["model-%05d-of-%05d.safetensors" % (i + 1, len(files)) for i in range(len(files))], files
    assert len(files) > 1 and index["metadata"]["total_size"] == sum(4 * v.size for v in source.values())
    seen = {}
    for file in files:
        for name, (_, arr) in parse(os.path.join(out, "sharded", file))[0].items():
            assert name not in seen and index["weight_map"][name] == file, name
            seen[name] = arr
    assert sorted(seen) == sorted(source) and all(same_bits(seen[k].reshape(-1), source[k]) for k in source)
    print("ok   our writer: F32, BF16 (torch rounding) and %d shards parsed independently" % len(files))


def main():
    tool, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    check_our_reader(tool, work, np.random.default_rng(7))
    check_our_writer(tool, work)


if __name__ == "__main__":
    main()
