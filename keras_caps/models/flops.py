"""Floating-point operations of the paper's CapsNet, counted from its layer shapes
(the benchmarks' ratios to the matmul roofline; checked against TensorFlow's profiler)."""


def capsnet_flops(
    h=28,
    w=28,
    c=1,
    classes=10,
    routings=3,
    filters=256,
    k=9,
    channels=32,
    dim=8,
    pk=9,
    stride=2,
    digit_dim=16,
    decoder=(512, 1024),
):
    """Floating-point operations per image (multiply-add = 2), counted from the layer shapes.

    Training counts each layer's backward pass: 2x its forward for layers whose input
    gradient is needed, 1x for the first convolution (no gradient w.r.t. the image).
    `stages` holds the forward and backward counts of each stage.
    """
    h1, w1 = h - k + 1, w - k + 1
    conv1 = 2 * h1 * w1 * filters * k * k * c
    h2, w2 = (h1 - pk) // stride + 1, (w1 - pk) // stride + 1
    primary = 2 * h2 * w2 * channels * dim * pk * pk * filters
    in_caps = h2 * w2 * channels
    u_hat = 2 * in_caps * classes * digit_dim * dim
    weighted_sum = 2 * in_caps * classes * digit_dim
    routing = routings * weighted_sum + (routings - 1) * weighted_sum  # sums + agreements
    sizes = (classes * digit_dim,) + tuple(decoder) + (h * w * c,)
    dec = sum(2 * a * b for a, b in zip(sizes, sizes[1:]))
    stages = {  # (forward, backward)
        "conv1": (conv1, conv1),
        "primary_caps": (primary, 2 * primary),
        "digit_caps": (u_hat + routing, 2 * u_hat + 2 * weighted_sum),
        "decoder": (dec, 2 * dec),
    }
    forward = sum(f for f, _ in stages.values())
    backward = sum(b for _, b in stages.values())
    return {"forward": forward, "train": forward + backward, "stages": stages}
