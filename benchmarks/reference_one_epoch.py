"""The seed's PyTorch CapsNet for one epoch of real MNIST, as the training issue ran it:
600 steps of batch 100, Adam 1e-3, no augmentation; prints the test accuracy.

    python benchmarks/reference_one_epoch.py --data_dir ../shared/data/mnist --seed 1

For the seed-to-seed spread of the reference beside ours (BENCHMARKS.md).
"""

import argparse
import importlib.util
import json
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _idx_module():
    # keras_caps/idx.py alone: importing the package would load TensorFlow beside torch.
    spec = importlib.util.spec_from_file_location("idx", os.path.join(HERE, "..", "keras_caps", "idx.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()

    import numpy as np
    import torch
    from reference_torch import CapsuleNet, caps_loss

    (x_train, y_train), (x_test, y_test) = _idx_module().load_mnist_idx(args.data_dir)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = CapsuleNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    to_tensor = lambda a: torch.from_numpy(a[:, None].astype(np.float32) / 255.0)  # noqa: E731
    order = rng.permutation(len(x_train))
    start = time.time()
    model.train()
    for step in range(args.steps):
        index = order[(step * 100) % len(order) :][:100]
        x, y = to_tensor(x_train[index]), torch.from_numpy(y_train[index])
        y_onehot = torch.zeros(len(y), 10).scatter_(1, y.view(-1, 1), 1.0)
        optimizer.zero_grad()
        scores, reconstruction = model(x, y_onehot)
        caps_loss(y_onehot, scores, x, reconstruction, 0.392).backward()
        optimizer.step()
    seconds = time.time() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_test), 500):
            scores, _ = model(to_tensor(x_test[i : i + 500]))
            correct += int((scores.argmax(1).numpy() == y_test[i : i + 500]).sum())
    print(
        json.dumps(
            {
                "seed": args.seed,
                "steps": args.steps,
                "test_accuracy": correct / len(x_test),
                "train_seconds": round(seconds, 1),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
