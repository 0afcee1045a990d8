#!/usr/bin/python3
"""ctest onnx_checker: every model test_onnx exported (DIR/*.onnx) must pass
onnx.checker.check_model(full_check=True) and strict shape inference, declare opset 13,
and carry the shapes of its input and output. Exits 77 (skipped) when onnx is missing."""
import glob
import os
import sys

try:
    import onnx
    from onnx import shape_inference
except ImportError as e:
    print(f"skipped: onnx is not importable by {sys.executable} ({e})")
    sys.exit(77)


def main():
    files = sorted(glob.glob(os.path.join(sys.argv[1], "*.onnx")))
    if not files:
        print("no exported models found (test_onnx writes them)")
        return 1
    failed = 0
    for path in files:
        try:
            m = onnx.load(path)
            onnx.checker.check_model(m, full_check=True)
            inferred = shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
            assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [13]
            out = inferred.graph.output[0].type.tensor_type.shape
            assert len(out.dim) >= 2, "output shape missing"
            names = {i.name for i in m.graph.initializer}
            assert all(n.name for n in m.graph.node), "unnamed node"
            print(f"ok {os.path.basename(path)}: {len(m.graph.node)} nodes, "
                  f"{len(names)} initializers")
        except Exception as e:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"FAIL {os.path.basename(path)}: {e}")
    print(f"{len(files) - failed} of {len(files)} exports pass the checker")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
