"""`radclr predict RUN IMAGE... [--out DIR] [--json] [--device auto]`."""

from __future__ import annotations

from radclr.ranges import NON_NEGATIVE_INT, POSITIVE_INT, arg_type


def register(sub) -> None:
    p = sub.add_parser("predict", help="finding probabilities, Grad-CAM box + overlay and box radiomics for images",
                       description="Classify PNG/JPEG/DICOM files with a trained run: per-finding probabilities and "
                       "the run's validation thresholds (a multi-class run: the one predicted class and its "
                       "probability), a Grad-CAM box (in the file's pixels) and overlay PNG for "
                       "the top finding and every finding above its threshold, the radiomic features of each box "
                       "with their percentile among the model's boxes on training images, and a plain-language "
                       "line for the most unusual features.")
    p.add_argument("run", help="run directory (a classifier on whole images)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, DICOM)")
    p.add_argument("--out", default="radclr-predict", help="folder for overlay PNGs and predictions.json "
                   "(default: ./radclr-predict)")
    p.add_argument("--json", action="store_true", help="print the full JSON result instead of a summary")
    p.add_argument("--device", default="auto", help="auto (default) | cpu | cuda")
    p.add_argument("--checkpoint", default="best", help="best | last | a checkpoint file")
    p.add_argument("--top-k", type=arg_type(NON_NEGATIVE_INT, "--top-k"), default=5, help="radiomic features explained per box (default 5)")
    p.add_argument("--top-only", action="store_true", help="only the top finding's CAM, box, radiomics, overlay")
    p.add_argument("--no-reference", action="store_true", help="skip the training-box reference population "
                   "(no percentiles); it is otherwise built once per checkpoint on the first predict")
    p.add_argument("--reference-max-images", type=arg_type(POSITIVE_INT, "--reference-max-images"), default=2000, metavar="N",
                   help="training images whose Grad-CAM boxes form the reference population (default 2000)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _summary(res: dict) -> str:
    lines = [f"{res['image']}  ({res['image_size'][1]} x {res['image_size'][0]} px)"]
    lines += [f"  WARNING: {w}" for w in res.get("warnings", [])]
    probs = sorted(res["probabilities"].items(), key=lambda kv: -kv[1])
    if res.get("task") == "multiclass":  # one class per image: the arg-max with its probability
        lines.append(f"  class: {res['predicted_class']}  p={res['probability']:.3f} (arg-max of {len(probs)} classes)")
        lines += [f"    {f:<20s} p={p:.3f}" for f, p in probs[1:]]
    else:
        for f, p in probs:
            t = res["thresholds"][f]
            lines.append(f"  {f:<20s} p={p:.3f}  threshold {t:.3f}{'  POSITIVE' if p >= t else ''}")
    for r in res["regions"]:
        x, y, w, h = r["box"]
        lines.append(f"  {r['finding']}: box x={x:.0f} y={y:.0f} w={w:.0f} h={h:.0f} (file pixels)"
                     f"{' [fallback box]' if r['fallback'] else ''}" + (f" -> {r['overlay']}" if r["overlay"] else ""))
        lines += [f"    - {e}" for e in r["explanation"]]
    return "\n".join(lines)


def run(args) -> int:
    import json

    from radclr.safe_write import atomic_path, writable_dir
    from radclr.predict import predict
    from radclr.runtime.device import resolve_device

    resolve_device(args.device, key="--device")  # a device this machine lacks: one line, before any work
    out = writable_dir(args.out, "output folder (--out)")  # before loading the model: say it first
    results = predict(args.run, args.images, args.out, device=args.device, checkpoint=args.checkpoint,
                      top_k=args.top_k, top_only=args.top_only, progress=not args.no_progress,
                      reference=not args.no_reference, reference_max_images=args.reference_max_images)
    with atomic_path(out / "predictions.json", "predictions") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n\n".join(_summary(r) for r in results))
        print(f"\nthreshold rule: {results[0]['threshold_rule']}; full results in {out / 'predictions.json'}")
    return 0
