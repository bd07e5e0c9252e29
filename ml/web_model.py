"""The serving graph with fixed shapes, for LiteRT.js in a page (static/js/device.js).

A run's `model.tflite` takes a span of any length (`audio` [1, -1], `starts` [1, -1]);
ml/classifier.py resizes its inputs per call. LiteRT.js (@litertjs/core 2.5.3) cannot:
its `run` refuses a tensor whose shape is not the model's declared one ("Float32[1, 32000]
does not match expected Float32[1, -1]"), and the graph's `picture` output, shaped by
a RESHAPE whose target is computed at run time, is a dynamic tensor that its compiled
model cannot bind ("Failed to set custom allocation for output tensor picture").

So the page gets the same graph for one window: `audio` [1, 1 s + 2 x context] (the span a
window needs), `starts` [1, 1], `offset` [1, 1]. Made here from the run's file, without
TensorFlow: the graph is run once at that shape (ai-edge-litert), every integer tensor
computed only from shapes and constants (SHAPE, and what follows from it: slices, PACKs,
RANGEs) becomes a constant of its value at that shape and the ops that computed it go, and
every tensor is declared at the shape it had. Same weights, same ops on the audio: the
numbers are the served ones (tests/test_on_device.py compares them).
"""
from __future__ import annotations

import warnings

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from ml.audio import CLIP_SAMPLES

_INTEGER = {schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64}


def window_span(context: int) -> int:
    """Samples of audio the one-window graph takes: the window and its context each side."""
    return CLIP_SAMPLES + 2 * int(context)


def one_window(data: bytes, context: int) -> bytes:
    """`data` (a serving graph, see ml/graph.py) with its inputs fixed to one window."""
    span = window_span(context)
    shapes = {"audio": (1, span), "starts": (1, 1), "offset": (1, 1)}
    with warnings.catch_warnings():      # "for debugging": here, to read the shape tensors once
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_content=bytes(data), experimental_preserve_all_tensors=True)
    inputs = {}
    for d in interpreter.get_input_details():
        name = next((n for n in shapes if d["name"].endswith(f"_{n}:0") or d["name"] == n), None)
        if name is None:
            raise ValueError(f"not a Hark serving graph (input {d['name']})")
        inputs[name] = d
    if set(inputs) != set(shapes):
        raise ValueError(f"not a Hark serving graph (inputs {sorted(inputs)})")
    for name, d in inputs.items():
        interpreter.resize_tensor_input(d["index"], shapes[name])
    interpreter.allocate_tensors()
    for name, d in inputs.items():
        value = np.full(shapes[name], context if name == "starts" else 0, d["dtype"])
        interpreter.set_tensor(d["index"], value)
    interpreter.invoke()

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    if len(model.subgraphs) != 1:
        raise ValueError("a serving graph has one subgraph")
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]

    def constant(t: int) -> bool:
        buffer = model.buffers[graph.tensors[t].buffer]
        return (buffer.data is not None and len(buffer.data) > 0) or buffer.size > 0

    from_shapes: set[int] = set()      # integer tensors that depend on shapes and constants only
    for op in graph.operators:
        ins = [i for i in op.inputs if i >= 0]
        integer = all(graph.tensors[o].type in _INTEGER for o in op.outputs)
        if integer and (codes[op.opcodeIndex] == schema.BuiltinOperator.SHAPE
                        or (ins and all(constant(i) or i in from_shapes for i in ins))):
            from_shapes.update(op.outputs)
    needed = {i for op in graph.operators if not set(op.outputs) <= from_shapes
              for i in op.inputs if i in from_shapes}
    needed.update(o for o in graph.outputs if o in from_shapes)
    for t in sorted(needed):
        value = np.ascontiguousarray(interpreter.get_tensor(t), _INTEGER[graph.tensors[t].type])
        model.buffers.append(schema.BufferT(data=np.frombuffer(value.tobytes(), np.uint8)))
        graph.tensors[t].buffer = len(model.buffers) - 1
    graph.operators = [op for op in graph.operators if not set(op.outputs) <= from_shapes]
    shapes_now = {d["index"]: d["shape"] for d in interpreter.get_tensor_details()}
    for i, tensor in enumerate(graph.tensors):
        if i in shapes_now:
            tensor.shape, tensor.shapeSignature = np.asarray(shapes_now[i], np.int32), None
    builder = flatbuffers.Builder(len(data) + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
