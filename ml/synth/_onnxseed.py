"""Make an ONNX TTS model's random noise reproducible.

Why: VITS voices (Piper) draw noise with RandomNormalLike, whose generator lives
inside the onnxruntime kernel and advances on every call, so one utterance's
sound would depend on which utterances the same worker synthesized before. This
rewrites each RandomNormalLike into a counter-based hash of (element index,
`noise_seed` input), giving the same normal-ish noise for the same seed.
"""

from __future__ import annotations

import math

SEED_INPUT = "noise_seed"
_P = 2147483629  # prime below 2**31: squares of residues fit in int64


def seeded_model(path) -> bytes:
    """Serialized copy of the model at `path` with a `noise_seed` int64[1] input."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    graph.input.append(helper.make_tensor_value_info(SEED_INPUT, TensorProto.INT64, [1]))

    def const(name, value, dtype=TensorProto.INT64):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, [], [value]))

    nodes = []
    for k, node in enumerate(graph.node):
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        p = f"_seeded{k}_"
        x, y = node.input[0], node.output[0]
        n = [
            const(p + "zero", 0), const(p + "one", 1), const(p + "P", _P),
            const(p + "c1", 1103515245 % _P), const(p + "c2", 2654435761 % _P),
            const(p + "a", 48271), const(p + "b", 11 + 7919 * k), const(p + "salt", 104729 * (k + 1)),
            const(p + "half", 0.5, TensorProto.FLOAT), const(p + "Pf", float(_P), TensorProto.FLOAT),
            const(p + "m2", -2.0, TensorProto.FLOAT), const(p + "tau", 2 * math.pi, TensorProto.FLOAT),
            const(p + "mean", float(attrs.get("mean", 0.0)), TensorProto.FLOAT),
            const(p + "scale", float(attrs.get("scale", 1.0)), TensorProto.FLOAT),
            helper.make_node("Shape", [x], [p + "shape"]),
            helper.make_node("ReduceProd", [p + "shape"], [p + "n"], keepdims=0),
            helper.make_node("Range", [p + "zero", p + "n", p + "one"], [p + "idx"]),
            helper.make_node("Mod", [SEED_INPUT, p + "P"], [p + "s0"]),
            helper.make_node("Mul", [p + "s0", p + "c2"], [p + "s1"]),
            helper.make_node("Add", [p + "s1", p + "salt"], [p + "s2"]),
            helper.make_node("Mod", [p + "s2", p + "P"], [p + "s"]),
            helper.make_node("Mul", [p + "idx", p + "c1"], [p + "k0"]),
            helper.make_node("Add", [p + "k0", p + "s"], [p + "k1"]),
            helper.make_node("Mod", [p + "k1", p + "P"], [p + "h0"]),
        ]
        prev = p + "h0"
        outs = []
        for r in range(4):  # square / affine rounds; rounds 2 and 4 give the two uniforms
            sq, af = f"{p}sq{r}", f"{p}af{r}"
            n += [
                helper.make_node("Mul", [prev, prev], [sq + "m"]),
                helper.make_node("Mod", [sq + "m", p + "P"], [sq]),
                helper.make_node("Mul", [sq, p + "a"], [af + "m"]),
                helper.make_node("Add", [af + "m", p + "b"], [af + "a"]),
                helper.make_node("Mod", [af + "a", p + "P"], [af]),
            ]
            prev = af
            if r in (1, 3):
                outs.append(af)
        for j, h in enumerate(outs):
            n += [
                helper.make_node("Cast", [h], [f"{p}f{j}"], to=TensorProto.FLOAT),
                helper.make_node("Add", [f"{p}f{j}", p + "half"], [f"{p}g{j}"]),
                helper.make_node("Div", [f"{p}g{j}", p + "Pf"], [f"{p}u{j}"]),
            ]
        n += [  # Box-Muller
            helper.make_node("Log", [p + "u0"], [p + "lg"]),
            helper.make_node("Mul", [p + "lg", p + "m2"], [p + "lg2"]),
            helper.make_node("Sqrt", [p + "lg2"], [p + "r"]),
            helper.make_node("Mul", [p + "u1", p + "tau"], [p + "th"]),
            helper.make_node("Cos", [p + "th"], [p + "c"]),
            helper.make_node("Mul", [p + "r", p + "c"], [p + "z"]),
            helper.make_node("Mul", [p + "z", p + "scale"], [p + "zs"]),
            helper.make_node("Add", [p + "zs", p + "mean"], [p + "zm"]),
            helper.make_node("Reshape", [p + "zm", p + "shape"], [y]),
        ]
        nodes += n
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString()
