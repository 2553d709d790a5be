"""One epoch (600 x 100) of real MNIST with one thing changed, for the table in BENCHMARKS.md.

    python benchmarks/one_epoch_probe.py --data_dir ../shared/data/mnist [--kernel_init glorot_uniform]
        [--bias zeros] [--policy float32] [--ema 0.99] [--adam_epsilon 1e-8] [--grouping torch] [--seed 1]
        [--schedule cosine] [--lr 2e-3] [--adam_form torch]

The same CapsNet and input pipeline as train.py (shift 2, Adam 1e-3); prints the test accuracy.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--policy", default="mixed_bfloat16")
    p.add_argument("--kernel_init", default="torch", help="torch (the default) or a Keras initializer name")
    p.add_argument("--bias", default="torch", choices=["torch", "zeros"])
    p.add_argument("--ema", type=float, default=0.0, help="Adam use_ema momentum (0: off)")
    p.add_argument("--adam_epsilon", type=float, default=None, help="default: the optimizer's own (1e-7 / 1e-8)")
    p.add_argument("--adam_form", default="keras", choices=["keras", "torch"],
                   help="keras.optimizers.Adam or keras_caps.TorchAdam (PyTorch's epsilon placement)")
    p.add_argument("--grouping", default="channels_last", choices=["channels_last", "torch"])
    p.add_argument("--shift_pixels", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--schedule", default="constant", choices=["constant", "cosine", "warmup_cosine", "warmup"],
                   help="learning rate over the 600 steps: constant, cosine decay to 0, 60 warm-up steps "
                        "then cosine to 0, or 60 warm-up steps then constant")
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args()

    import keras
    from keras import ops

    from keras_caps import CapsNet, PrimaryCapsule
    from keras_caps.activations import squash
    from keras_caps.data import load_arrays, make_dataset
    from keras_caps.optimizers import TorchAdam

    if args.grouping == "torch":
        def call(self, inputs):  # the reference's view() of a channels-first tensor
            out = self.conv(inputs)
            _, h, w, c = out.shape
            out = ops.transpose(out, (0, 3, 1, 2))
            return squash(ops.reshape(out, (-1, h * w * c // self.dim_capsule, self.dim_capsule)))

        PrimaryCapsule.call = call
    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.policy)
    (xt, yt), (xs, ys), _ = load_arrays("mnist", args.data_dir)
    train = make_dataset(xt, yt, 100, True, shift_pixels=args.shift_pixels, seed=args.seed)
    model = CapsNet(kernel_initializer=None if args.kernel_init == "torch" else args.kernel_init,
                    bias_initializer="fan_in_uniform" if args.bias == "torch" else "zeros")
    steps = len(train)
    if args.schedule == "constant":
        lr = args.lr
    elif args.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(args.lr, steps)
    elif args.schedule == "warmup":
        lr = keras.optimizers.schedules.CosineDecay(0.0, 10 ** 9, warmup_target=args.lr, warmup_steps=steps // 10)
    else:
        lr = keras.optimizers.schedules.CosineDecay(0.0, steps - steps // 10, warmup_target=args.lr,
                                                    warmup_steps=steps // 10)
    adam = TorchAdam if args.adam_form == "torch" else keras.optimizers.Adam
    extra = {} if args.adam_epsilon is None else {"epsilon": args.adam_epsilon}
    optimizer = adam(lr, use_ema=args.ema > 0, ema_momentum=args.ema or 0.99, **extra)
    model.compile(optimizer=optimizer)
    start = time.time()
    model.fit(train, epochs=1, verbose=0, shuffle=False)
    seconds = time.time() - start
    accuracy = model.evaluate(make_dataset(xs, ys, 100, False), verbose=0, return_dict=True)["accuracy"]
    print(json.dumps({**vars(args), "test_accuracy": accuracy, "train_seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
