"""Two small ONNX graphs that show whether a CUDA provider option takes effect (bench/cuda-options.ts).

- matmul.onnx: Y = X @ W with X, W float32 [4096, 4096] (W a 64 MiB initializer). TF32 makes it several
  times faster on Hopper; a memory limit below 64 MiB must make the session fail.
- chain.onnx: 16 such products in a chain on X [512, 4096]: compute-bound, with small inputs and outputs.
- conv.onnx: a 3x3 convolution, 64 -> 64 channels, on [8, 64, 128, 128]: the first run's time shows
  cuDNN's algorithm search (exhaustive benchmarks candidates, heuristic does not).

    python3 models/scripts/cuda_probe_graphs.py OUT_DIR
"""
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4096, 4096), dtype=np.float32) / 64, "W")
    save(helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"])], "matmul",
                           [helper.make_tensor_value_info("X", TensorProto.FLOAT, [4096, 4096])],
                           [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4096, 4096])], [w]),
         out / "matmul.onnx")
    k = numpy_helper.from_array(rng.standard_normal((64, 64, 3, 3), dtype=np.float32) / 24, "K")
    save(helper.make_graph([helper.make_node("Conv", ["X", "K"], ["Y"], pads=[1, 1, 1, 1])], "conv",
                           [helper.make_tensor_value_info("X", TensorProto.FLOAT, [8, 64, 128, 128])],
                           [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [8, 64, 128, 128])], [k]),
         out / "conv.onnx")
    # Compute-bound with small inputs and outputs: 16 products [512, 4096] x [4096, 4096] in a chain (the
    # 64 MiB W shared), 275 GFLOP a run against 16 MiB copied, so TF32 on or off shows in the run time.
    nodes, last = [], "X"
    for i in range(16):
        nodes.append(helper.make_node("MatMul", [last, "W"], [f"h{i}"]))
        last = f"h{i}"
    nodes[-1].output[0] = "Y"
    save(helper.make_graph(nodes, "chain",
                           [helper.make_tensor_value_info("X", TensorProto.FLOAT, [512, 4096])],
                           [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [512, 4096])], [w]),
         out / "chain.onnx")
    print(f"wrote {out}/matmul.onnx, conv.onnx and chain.onnx")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
