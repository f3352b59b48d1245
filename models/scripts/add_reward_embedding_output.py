"""Expose a scorer's unit-normalised image embedding as a second ONNX output, `image_embeds`, and name it
in the bundle's rewards.json (`"embedding": "image_embeds"`). The search-quality benchmark measures the
diversity of final samples with it.

    /usr/bin/python3 models/scripts/add_reward_embedding_output.py models/bundles/tiny-*

Bundles exported after 2026-11-28 have the output already (models/training/rewards.py); this patches
older ones in place without retraining. The graph is the exporter's CLIP-style score,
    scores = 100 * ReduceSum(Mul(image_embeds, text_embeds)),
so the embedding is the Mul operand that depends on the `images` input. Idempotent."""
import json
import os
import sys

import onnx
from onnx import TensorProto, helper

OUTPUT = "image_embeds"


def producers(graph):
    return {out: node for node in graph.node for out in node.output}


def depends_on(name, source, made_by, seen=None):
    seen = set() if seen is None else seen
    if name == source:
        return True
    if name in seen or name not in made_by:
        return False
    seen.add(name)
    return any(depends_on(i, source, made_by, seen) for i in made_by[name].input if i)


def image_embedding_tensor(graph, score_output, image_input):
    made_by = producers(graph)
    scale = made_by[score_output]
    if scale.op_type != "Mul":
        raise ValueError(f"{score_output} is made by {scale.op_type}, expected Mul(ReduceSum, 100)")
    reduce_sum = next((made_by[i] for i in scale.input if i in made_by and made_by[i].op_type == "ReduceSum"), None)
    if reduce_sum is None:
        raise ValueError(f"{score_output}: no ReduceSum feeds the final Mul")
    product = made_by[reduce_sum.input[0]]
    if product.op_type != "Mul":
        raise ValueError(f"the ReduceSum before {score_output} sums {product.op_type}, expected Mul(image, text)")
    sides = [i for i in product.input if depends_on(i, image_input, made_by) and not depends_on(i, "input_ids", made_by)]
    if len(sides) != 1:
        raise ValueError(f"cannot tell the image side of {list(product.input)}")
    return sides[0]


def patch(onnx_path, score_output, image_input, size):
    model = onnx.load(onnx_path)
    graph = model.graph
    if any(o.name == OUTPUT for o in graph.output):
        return False
    tensor = image_embedding_tensor(graph, score_output, image_input)
    # Rename through an Identity so the output has a stable name.
    graph.node.append(helper.make_node("Identity", [tensor], [OUTPUT], name="image_embeds_output"))
    graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", size]))
    onnx.checker.check_model(model)
    onnx.save(model, onnx_path)
    return True


def main(bundles):
    for bundle in bundles:
        manifest_path = os.path.join(bundle, "rewards.json")
        manifest = json.load(open(manifest_path))
        for entry in manifest["rewards"]:
            if "path" not in entry:
                continue  # builtin rewards
            image_input = next(k for k, v in entry["inputs"].items() if v == "image")
            size = entry["arch"]["emb"]  # the scorer's embedding width, as the training export records it
            changed = patch(os.path.join(bundle, entry["path"]), entry.get("output", "scores"), image_input, size)
            entry["embedding"] = OUTPUT
            print(f"{bundle}: {entry['name']}: {'added' if changed else 'already has'} {OUTPUT}")
        with open(manifest_path, "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
