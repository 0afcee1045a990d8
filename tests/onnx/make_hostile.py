#!/usr/bin/python3
"""Write small ONNX models outside the supported subset or malformed on purpose, for the
hostile-input tests of test_onnx.c (each with the status and a message fragment it must
produce, listed in test_onnx.c). Committed in tests/onnx/data/bad_*.onnx; rerun with
Debian's /usr/bin/python3 (python3-onnx) to regenerate."""
import os
import sys

try:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:  # pragma: no cover
    print(f"skipped: onnx is not importable by {sys.executable} ({e})")
    sys.exit(77)

F = TensorProto.FLOAT


def model(nodes, inits, inp=("x", [None, 4]), out=("y", [None, 3]), opset=13, extra_inputs=()):
    def vi(name, shape):
        return helper.make_tensor_value_info(name, F, ["N" if d is None else d for d in shape])
    g = helper.make_graph(nodes, "bad", [vi(*inp)] + [vi(*e) for e in extra_inputs],
                          [vi(*out)], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def w(name, shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data")
    gemm = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc", transB=1)]
    cases = {}
    # an operator we do not map
    cases["bad_op"] = model([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], [],
                            out=("y", [None, 4]))
    # conv with groups
    cases["bad_group"] = model(
        [helper.make_node("Conv", ["x", "W"], ["y"], name="conv_g", group=2)],
        [w("W", [4, 1, 3, 3])], inp=("x", [None, 2, 5, 5]), out=("y", [None, 4, 3, 3]))
    # asymmetric padding
    cases["bad_pads"] = model(
        [helper.make_node("Conv", ["x", "W"], ["y"], name="conv_p", pads=[1, 0, 1, 0])],
        [w("W", [2, 1, 3, 3])], inp=("x", [None, 1, 5, 5]), out=("y", [None, 2, 5, 3]))
    # not a chain: y = relu(x) + sigmoid(x) with a matrix
    cases["bad_branch"] = model(
        [helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="fc", transB=1),
         helper.make_node("Relu", ["h"], ["a"], name="r"),
         helper.make_node("Gemm", ["h", "W2", "b2"], ["c"], name="fc2", transB=1),
         helper.make_node("Add", ["a", "c"], ["y"], name="join")],
        [w("W", [3, 4]), w("b", [3]), w("W2", [3, 3]), w("b2", [3])])
    # two data inputs
    cases["bad_two_inputs"] = model(
        [helper.make_node("Add", ["x", "x2"], ["y"], name="add2")], [],
        out=("y", [None, 4]), extra_inputs=[("x2", [None, 4])])
    # weights of a data type we reject (string)
    t = helper.make_tensor("W", TensorProto.STRING, [3, 4], [b"a"] * 12)
    cases["bad_type"] = model(gemm, [t, w("b", [3])])
    # declared size larger than the data
    t = helper.make_tensor("W", F, [3, 4], np.ones(12, np.float32).tobytes(), raw=True)
    t.dims[:] = [3000, 4000]
    cases["bad_size"] = model(gemm, [t, w("b", [3])])
    # a huge declared dimension (element count overflows)
    t = helper.make_tensor("W", F, [3, 4], np.ones(12, np.float32).tobytes(), raw=True)
    t.dims[:] = [1 << 40, 1 << 40, 1 << 40]
    cases["bad_huge_dims"] = model(gemm, [t, w("b", [3])])
    # a huge input row
    cases["bad_huge_input"] = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [],
                                    inp=("x", [None, 1 << 20, 1 << 20]),
                                    out=("y", [None, 1 << 20, 1 << 20]))
    # an opset outside 11..17
    cases["bad_opset"] = model(gemm, [w("W", [3, 4]), w("b", [3])], opset=18)
    # exact GELU (erf form): not our tanh approximation
    c = lambda n, v: helper.make_node("Constant", [], [n], value=numpy_helper.from_array(
        np.array(v, np.float32)))
    cases["bad_erf_gelu"] = model(
        [c("s2", 1.4142135), c("one", 1.0), c("half", 0.5),
         helper.make_node("Div", ["x", "s2"], ["d"], name="div"),
         helper.make_node("Erf", ["d"], ["e"], name="erf"),
         helper.make_node("Add", ["e", "one"], ["a"], name="add"),
         helper.make_node("Mul", ["x", "a"], ["m"], name="mul"),
         helper.make_node("Mul", ["m", "half"], ["y"], name="mul2")], [], out=("y", [None, 4]))
    # a bias Add that is not after a MatMul
    cases["bad_add"] = model([helper.make_node("Add", ["x", "b"], ["y"], name="shift")],
                             [w("b", [4])], out=("y", [None, 4]))
    # valid models with float16 and float64 weights (converted to float32 at import)
    for dt, np_t in (("fp16", np.float16), ("fp64", np.float64)):
        wt = numpy_helper.from_array((np.arange(12).reshape(3, 4) / 4.0).astype(np_t), "W")
        bt = numpy_helper.from_array(np.array([0.5, -1.0, 2.0]).astype(np_t), "b")
        cases["ok_" + dt] = model(gemm, [wt, bt])
    # shape arithmetic the folder must evaluate: Slice of rank 2, Transpose, Reshape, Equal,
    # Where on constants, Expand of a constant (the bias); the data is reshaped to [N, 6]
    i64 = lambda n, v: numpy_helper.from_array(np.array(v, np.int64), n)
    cases["ok_fold"] = model(
        [helper.make_node("Shape", ["x"], ["s"], name="shape"),
         helper.make_node("Slice", ["s", "z1", "o1"], ["a"], name="batch"),
         helper.make_node("Transpose", ["m"], ["mt"], name="t", perm=[1, 0]),
         helper.make_node("Slice", ["mt", "z2", "e2", "ax2"], ["ms"], name="slice2"),
         helper.make_node("Reshape", ["ms", "flat"], ["mr"], name="rs"),
         helper.make_node("Equal", ["mr", "want"], ["eq"], name="eq"),
         helper.make_node("Where", ["eq", "six2", "zero2"], ["w6"], name="where"),
         helper.make_node("Slice", ["w6", "o1", "two"], ["six"], name="pick"),
         helper.make_node("Concat", ["a", "six"], ["shp"], name="cat", axis=0),
         helper.make_node("Reshape", ["x", "shp"], ["f"], name="flatten"),
         helper.make_node("Expand", ["half", "three"], ["bias"], name="expand"),
         helper.make_node("Gemm", ["f", "W", "bias"], ["y"], name="fc", transB=1)],
        [i64("z1", [0]), i64("o1", [1]), i64("m", [[2, 3], [4, 5]]), i64("z2", [0, 0]),
         i64("e2", [2, 1]), i64("ax2", [0, 1]), i64("flat", [-1]), i64("want", [2, 3]),
         i64("six2", [6, 6]), i64("zero2", [0, 0]), i64("two", [2]), i64("three", [3]),
         numpy_helper.from_array(np.array([0.5], np.float32), "half"),
         numpy_helper.from_array((np.arange(18).reshape(3, 6) / 10.0).astype(np.float32), "W")],
        inp=("x", [None, 2, 3]))
    # scalers written by hand: (x - off) / d at the input, y * m + o at the output
    f32 = lambda n, v: numpy_helper.from_array(np.array(v, np.float32), n)
    cases["ok_scaler_div"] = model(
        [helper.make_node("Sub", ["x", "off"], ["xs"], name="center"),
         helper.make_node("Div", ["xs", "d"], ["xn"], name="normalise"),
         helper.make_node("Gemm", ["xn", "W", "b"], ["h"], name="fc", transB=1),
         helper.make_node("Mul", ["h", "m"], ["hm"], name="unscale"),
         helper.make_node("Add", ["hm", "o"], ["y"], name="uncenter")],
        [f32("off", [1.0, -2.0, 0.5]), f32("d", [2.0, 0.25, 4.0]),
         f32("W", [[0.5, -1.0, 0.25], [1.5, 0.75, -0.5]]), f32("b", [0.1, -0.2]),
         f32("m", [10.0, 0.5]), f32("o", [100.0, -3.0])],
        inp=("x", [None, 3]), out=("y", [None, 2]))
    # zeros over the batch (as torch builds an RNN's initial state) read by an Add: refused
    zeros = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "i0"], ["n"], name="batch", axis=0),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"], name="unsq"),
             helper.make_node("Concat", ["n1", "four"], ["zs"], name="cat", axis=0),
             helper.make_node("ConstantOfShape", ["zs"], ["zeros"], name="zeros")]
    cases["bad_batch_zeros"] = model(
        zeros + [helper.make_node("Add", ["x", "zeros"], ["y"], name="add_state")],
        [i64("i0", 0), i64("ax0", [0]), i64("four", [4])], out=("y", [None, 4]))
    # arithmetic on the batch size: refused, naming the node
    cases["bad_batch_arith"] = model(
        zeros[:2] + [helper.make_node("Mul", ["n", "two"], ["n2"], name="double_batch"),
                     helper.make_node("Unsqueeze", ["n2", "ax0"], ["n3"], name="unsq"),
                     helper.make_node("Concat", ["n3", "two1"], ["shp"], name="cat", axis=0),
                     helper.make_node("Reshape", ["x", "shp"], ["y"], name="rs")],
        [i64("i0", 0), i64("ax0", [0]), i64("two", 2), i64("two1", [2])],
        out=("y", [None, 2]))
    # recurrent layers outside the supported subset: ONNX's own GRU form (linear_before_reset
    # 0) and an LSTM with a non-zero initial state
    def recurrent(op, extra_inputs, **attrs):
        g = 3 if op == "GRU" else 4
        w3 = lambda n, s: numpy_helper.from_array(np.full(s, 0.1, np.float32), n)
        return model(
            [helper.make_node("Transpose", ["x"], ["xt"], name="to_time_major", perm=[1, 0, 2]),
             helper.make_node(op, ["xt", "W", "R", "", ""] + extra_inputs, ["", "h"],
                              name="cell", hidden_size=3, **attrs),
             helper.make_node("Squeeze", ["h", "ax0"], ["y"], name="drop_direction")],
            [w3("W", [1, g * 3, 2]), w3("R", [1, g * 3, 3]), i64("ax0", [0])]
            + ([w3("h0", [1, 1, 3])] if extra_inputs else []),
            inp=("x", [None, 4, 2]), out=("y", [None, 3]))
    cases["bad_gru_reset"] = recurrent("GRU", [])
    cases["bad_lstm_state"] = recurrent("LSTM", ["h0"])
    for name, m in cases.items():
        with open(os.path.join(out, name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())
        print(name)


if __name__ == "__main__":
    main()
