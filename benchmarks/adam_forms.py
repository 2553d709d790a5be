"""Why Adam's epsilon placement could matter for CapsNet, and that TorchAdam is PyTorch's Adam.

    python benchmarks/adam_forms.py --data_dir ../shared/data/mnist

1. CapsNet's gradient scale at initialisation: the median and 10th/90th percentiles of |g| per
   weight on the first 100 training images (seed 0), one JSON line per weight.
2. If torch is installed (`pip install torch==2.13.0`, as for benchmarks/throughput.py):
   `keras_caps.TorchAdam` against `torch.optim.Adam` on the same 20 steps of gradients of scale
   1e-6, and the largest difference of the weights; Keras's own Adam beside it.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="folder with the four MNIST IDX files")
    args = p.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_caps import CapsNet, TorchAdam
    from keras_caps.idx import load_mnist_idx

    keras.utils.set_random_seed(0)
    (x_train, y_train), _ = load_mnist_idx(args.data_dir)
    x = tf.constant((x_train[:100].astype("float32") / 255)[..., None])
    y = tf.constant(y_train[:100])
    model = CapsNet()
    model(x)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, y, model.forward(x), training=True)
    for var, grad in zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables)):
        g = np.abs(grad.numpy()).ravel()
        print(json.dumps({"weight": var.path, "median_abs_grad": float(np.median(g)),
                          "p10": float(np.percentile(g, 10)), "p90": float(np.percentile(g, 90))}))

    try:
        import torch
    except ImportError:
        print(json.dumps({"torch": "not installed: parity check skipped"}))
        return
    rng = np.random.default_rng(0)
    w = rng.normal(size=(1000,)).astype("float32")
    grads = [(1e-6 * rng.normal(size=w.shape)).astype("float32") for _ in range(20)]
    param = torch.nn.Parameter(torch.tensor(w))
    reference = torch.optim.Adam([param], lr=1e-3)
    for g in grads:
        param.grad = torch.tensor(g)
        reference.step()
    row = {"torch": torch.__version__, "steps": len(grads), "gradient_scale": 1e-6}
    for name, optimizer in (("torch_adam", TorchAdam(1e-3)), ("keras_adam", keras.optimizers.Adam(1e-3))):
        var = keras.Variable(w)
        for g in grads:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
        ours = keras.ops.convert_to_numpy(var)
        row[f"{name}_max_abs_diff_vs_torch"] = float(np.abs(ours - param.detach().numpy()).max())
        row[f"{name}_mean_abs_move"] = float(np.abs(ours - w).mean())
    row["torch_mean_abs_move"] = float(np.abs(param.detach().numpy() - w).mean())
    print(json.dumps(row))


if __name__ == "__main__":
    main()
