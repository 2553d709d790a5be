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
        lines.append(
            f"| {row['file']} | {size} | {100 * row['accuracy']:.2f}% | {100 * row['agreement']:.2f}% "
            f"| {row['max_abs_score_diff']:.2e} | {row['latency_ms']:.2f} |"
        )
    micro = [row for row in rows if "tflm_arena_bytes" in row]
    if micro:
        lines += [
            "",
            f"In TFLite Micro's interpreter (reference kernels, this CPU), one image a call; the "
            f"microcontroller time is an estimate: multiply-accumulates at {context['mcu_macs_per_cycle']:g} "
            f"a cycle and {context['mcu_mhz']:g} MHz.",
            "",
            "| file | flash (KB) | tensor arena (KB) | TFLM latency (ms) | LiteRT latency (ms) "
            "| class as LiteRT's | largest score difference from LiteRT's reference kernels | MACs (M) "
            "| MCU estimate (ms) | operators |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in micro:
            ops = ", ".join(f"{name} {count}" for name, count in row["op_counts"].items())
            lines.append(
                f"| {row['file']} | {row['size_bytes'] / 1000:.1f} | {row['tflm_arena_bytes'] / 1000:.1f} "
                f"| {row['tflm_latency_ms']:.2f} | {row['latency_ms']:.2f} "
                f"| {100 * row['tflm_agreement']:.2f}% of {row['tflm_images']} "
                f"| {row['tflm_max_abs_score_diff_reference_kernels']:.3g} | {row['macs'] / 1e6:.2f} "
                f"| {row['mcu_estimate_ms']:.1f} | {ops} |"
            )
    over = [line for row in rows for line in row.get("over_target", [])]
    target = context.get("target")
    if target and context.get("target_limits"):
        limits = ", ".join(f"{k.replace('_bytes', '')} {v // 1024} KiB" for k, v in context["target_limits"].items())
        verdict = "; ".join(over) if over else "every file within them"
        lines += ["", f"Target {target} (limits: {limits}): {verdict}."]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
