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
    for name, m in cases.items():
        with open(os.path.join(out, name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())
        print(name)


if __name__ == "__main__":
    main()
