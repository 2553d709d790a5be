"""The predict CLI on photo-like digits: MNIST test digits printed dark on light
paper, enlarged, moved off-centre, tinted, noisy, blurred and saved as JPEG and
PNG, then classified by `predict.py` as a user's files would be.

    python benchmarks/predict_photos.py --model runs/one_epoch/dist/capsnet_int8.tflite \
        --data_dir ../shared/data/mnist --count 200

Prints one JSON line: accuracy on the photo-like files and on the same digits
given to the model as they are in MNIST (the loader's cost in accuracy).
"""

import argparse
import io
import json
import os
import tempfile


def photo_like(digit, rng):
    """A 28x28 uint8 MNIST digit -> an RGB PIL image that looks like a phone photo of ink on paper."""
    import numpy as np
    from PIL import Image, ImageFilter

    scale = rng.uniform(3, 8)
    size = int(28 * scale)
    ink = Image.fromarray(255 - digit).resize((size, size), Image.BICUBIC)  # dark ink on white
    width, height = int(size * rng.uniform(1.1, 1.8)), int(size * rng.uniform(1.1, 1.8))
    paper = Image.new("L", (width, height), 255)
    paper.paste(ink, (int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))))
    gray = np.asarray(paper, np.float32)
    gray = gray * rng.uniform(0.7, 0.95) + rng.normal(0, 6, gray.shape)  # grey paper, sensor noise
    tint = rng.uniform(0.85, 1.0, 3)
    rgb = np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from keras_caps.apps.predict import load_classifier, predict_files
    from keras_caps.data.idx import load_mnist_idx

    _, (x_test, y_test) = load_mnist_idx(args.data_dir)
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(x_test), args.count, replace=False)
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for n, i in enumerate(picks):
            image = photo_like(x_test[i], rng)
            path = os.path.join(folder, f"{n:04d}_{y_test[i]}.{'jpg' if n % 2 else 'png'}")
            image.save(path, quality=int(rng.integers(60, 95))) if n % 2 else image.save(path)
            files.append(path)
        out, err = io.StringIO(), io.StringIO()
        failures = predict_files(args.model, files, out=out, err=err)
        predicted = [int(line.split()[-2]) for line in out.getvalue().splitlines()]
        sizes = sorted({Image.open(f).size for f in files[:5]})
    classify, shape, _ = load_classifier(args.model)
    direct = classify((x_test[picks] / 255.0).astype(np.float32)[..., None]).argmax(1)
    photo_acc = float(np.mean(np.array(predicted) == y_test[picks])) if not failures else None
    print(
        json.dumps(
            {
                "model": args.model,
                "count": args.count,
                "unreadable": failures,
                "photo_like_accuracy": photo_acc,
                "mnist_as_is_accuracy": float(np.mean(direct == y_test[picks])),
                "example_sizes": sizes,
            }
        )
    )


if __name__ == "__main__":
    main()
