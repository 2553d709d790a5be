"""The export report, as JSON and as a Markdown table."""

import json
import os


def write_report(rows, out, context):
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump({"context": context, "files": rows}, f, indent=2)
    lines = [
        f"Model `{context['model']}`, {context['eval_images']} {context['dataset']} test images, "
        f"int8 calibrated on {context['calibration_images']} training images, int8 I/O {context['int8_io']}, "
        f"{'integer-only' if context.get('int8_integer_only') else 'squash in float'}.",
        "",
        "| file | size (MB) | accuracy | agreement with Keras | max abs score diff | batch-1 latency (ms) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        size = "" if row["size_bytes"] is None else f"{row['size_bytes'] / 1e6:.1f}"
        lines.append(f"| {row['file']} | {size} | {100 * row['accuracy']:.2f}% | {100 * row['agreement']:.2f}% "
                     f"| {row['max_abs_score_diff']:.2e} | {row['latency_ms']:.2f} |")
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
