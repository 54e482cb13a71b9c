"""Run an ONNX model on ONNX Runtime's CPU provider, BF16 included.

ORT's Python binding cannot turn BF16 tensors into numpy arrays, so every
tensor goes in and out as an OrtValue; BF16 travels as its uint16 bits.
"""
import ctypes

import numpy as np
import onnxruntime as ort
from onnx import TensorProto

BF16 = TensorProto.BFLOAT16


def session(path, intra_op=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run(sess, feeds):
    """feeds: {name: (triton_datatype, np.ndarray)} -> {name: np.ndarray} (BF16 as uint16 bits)."""
    names = [o.name for o in sess.get_outputs()]
    bf16 = any(d == "BF16" for d, _ in feeds.values()) or any(o.type == "tensor(bfloat16)" for o in sess.get_outputs())
    if not bf16:
        # Strings cannot go through an IO binding; plain run handles every other type.
        arrays = {n: a for n, (_, a) in feeds.items()}
        return dict(zip(names, sess.run(names, arrays)))
    binding = sess.io_binding()
    for name, (datatype, array) in feeds.items():
        if datatype == "BF16":
            value = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
                np.ascontiguousarray(array, dtype=np.uint16), onnx_element_type=BF16
            )
            binding.bind_ortvalue_input(name, value)
        else:
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
    for name in names:
        binding.bind_output(name, "cpu")
    sess.run_with_iobinding(binding)
    out = {}
    for name, value in zip(names, binding.get_outputs()):
        if value.data_type() == "tensor(bfloat16)":
            shape = value.shape()
            count = int(np.prod(shape))
            raw = ctypes.string_at(value.data_ptr(), 2 * count)
            out[name] = np.frombuffer(raw, dtype=np.uint16).reshape(shape).copy()
        else:
            out[name] = value.numpy()
    return out
