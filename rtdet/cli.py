"""The ``rtdet`` command line.

``rtdet <command> [options]``. Every setting is a field of :class:`rtdet.config.Config`
(one definition, one default); a command exposes the flags of the settings it uses
and no others, and ``--config run.yaml`` and flags describe the same settings; an
explicit value (YAML or flag) always wins. Handlers import their modules lazily so
``rtdet --help`` stays fast. Every error a person can act on is one
``rtdet: error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from rtdet import config as C
from rtdet.errors import RtdetError
from rtdet.registry import TASK_DEFAULTS


def _flag_type(tp: Any) -> dict:
    """argparse keyword arguments that parse a flag into a value of type ``tp``."""
    origin = typing.get_origin(tp)
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        return {"choices": list(typing.get_args(tp))}
    if origin in (list, tuple):
        return {"nargs": "*", "type": typing.get_args(tp)[0]}
    if origin in (typing.Union, types.UnionType):  # a number or "auto" (see rtdet.engine.recipe)
        number = next(a for a in typing.get_args(tp) if a in (int, float))

        def number_or_auto(text: str) -> Any:
            return C.AUTO if text == C.AUTO else number(text)

        number_or_auto.__name__ = f"{number.__name__} or 'auto'"  # argparse's error names the type
        return {"type": number_or_auto}
    return {"type": tp}


# The settings each command uses besides whole sections (flat names, see rtdet.config.flat_fields).
VAL_SETTINGS = ("data", "root", "split", "imgsz", "batch", "workers", "rect", "val_conf", "iou", "max_det", "nms",
                "backend", "device", "metric")
PREDICT_SETTINGS = ("imgsz", "conf", "iou", "max_det", "nms", "topk", "overlay_alpha", "backend")
EXPORT_SETTINGS = ("imgsz", "conf", "iou", "max_det")
BENCH_SETTINGS = ("imgsz", "conf", "iou", "max_det", "nms", "topk",
                  "data", "root", "batch", "workers")  # data ... workers: --tune --data
SERVE_SETTINGS = PREDICT_SETTINGS  # the server's defaults; a request may change conf, iou, max_det, topk, imgsz


def add_config_flags(parser: argparse.ArgumentParser, sections: tuple[str, ...] = (),
                     names: tuple[str, ...] = ()) -> None:
    """Add ``--config`` and one flag per setting of the given config sections and of ``names``."""
    parser.add_argument("--config", metavar="YAML", help="YAML file of settings; flags override it")
    defaults = C.Config()
    fields = C.flat_fields()
    used = [s for s in C.SECTIONS if s in sections or any(fields[n][0] == s for n in names)]
    groups = {s: parser.add_argument_group(f"{s} settings") for s in used}
    flags = [n for n, (section, _, _) in fields.items() if section in sections or n in names]
    parser.set_defaults(config_flags=tuple(flags))  # which of the parsed values are settings
    for name, (section, f, tp) in fields.items():
        if name not in flags:
            continue
        default = getattr(getattr(defaults, section), name)
        own = "".join(f"; {task}: {v[name]!r}" for task, v in TASK_DEFAULTS.items() if v.get(name, default) != default)
        groups[section].add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,
            help=f"{f.metadata['help']} (default: {default!r}{own})",
            **_flag_type(tp),
        )


def config_from_args(args: argparse.Namespace, check: bool = True) -> C.Config:
    """The resolved config: defaults, then ``--config`` YAML, then flags (``cfg.given`` says which were set).

    ``check=False`` leaves out the check that every given setting applies to ``cfg.model``
    (for commands whose model comes from a weights file).
    """
    names = getattr(args, "config_flags", ())
    overrides = {k: v for k, v in vars(args).items() if k in names}
    return C.load_config(getattr(args, "config", None), overrides, check=check)


def _cmd_config(args: argparse.Namespace) -> int:
    cfg = C.resolve_task_defaults(config_from_args(args))
    if args.save:
        C.save_config(cfg, args.save)
        print(f"saved {args.save}")
    else:
        import yaml

        print(yaml.safe_dump(C.config_to_dict(cfg), sort_keys=False), end="")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    from rtdet.workflows import print_summary, train

    result = train(config_from_args(args))
    if os.environ.get("RANK", "0") == "0":  # under torchrun the final report is rank 0's alone
        print_summary(result)
    return 0


def _cmd_val(args: argparse.Namespace) -> int:
    from rtdet.workflows import print_summary, validate

    result = validate(args.weights, config_from_args(args, check=False), args.val_out, args.save_json)
    print_summary(result)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from rtdet.demo import run_demo

    run_demo(args.out, args.data_dir, epochs=args.epochs, task=args.task)
    return 0


def _cmd_metrics_coco(args: argparse.Namespace) -> int:
    from rtdet.metrics.cli import metrics_coco

    return metrics_coco(args.gt, args.detections, args.json, args.per_class, args.plots)


def _cmd_info(args: argparse.Namespace) -> int:
    from rtdet.registry import model_spec

    spec = model_spec(args.model)  # an unknown name is an error before torch is imported
    if spec.task != "classify" and args.imgsz % 32:  # detectors' and segmenters' strides; classifiers pool any size
        raise C.ConfigError(f"--imgsz must be a multiple of 32 for a {spec.task} model, got {args.imgsz}")
    from rtdet.models import build_model
    from rtdet.models.info import model_info

    model = build_model(args.model, args.classes, act=args.act or None, norm=args.norm)
    info = model_info(model, args.imgsz)
    act = model.build_args.get("act") or "fixed"
    gflops = f"{info['gflops']:.2f}" if info["gflops"] >= 0.1 else f"{info['gflops']:.4f}"
    print(f"{args.model}: {info['params'] / 1e6:.2f} M parameters, {gflops} GFLOPs at "
          f"{args.imgsz}x{args.imgsz} ({spec.task}, {args.classes} classes, act={act}, norm={args.norm})")
    return 0


def _deploy_config(args: argparse.Namespace) -> tuple[C.Config, int | None]:
    """Settings of predict/export/bench and the input size: explicit ``--imgsz`` (or YAML), else None
    (the model's own: an ONNX file's, or the size the checkpoint was trained at)."""
    cfg = config_from_args(args, check=False)
    return cfg, (cfg.data.imgsz if cfg.explicit("imgsz") else None)


def _backend_name(args: argparse.Namespace, cfg: C.Config) -> tuple[str | None, str]:
    """(--backend (or YAML) or None, the backend when neither it nor ``rtdet bench --tune``'s file next to the
    weights names one: onnxruntime for an .onnx file, else the setting's default)."""
    default = "onnxruntime" if str(args.weights or "").endswith(".onnx") else cfg.eval.backend
    return (cfg.eval.backend if cfg.explicit("backend") else None), default


def _tune(args: argparse.Namespace, cfg: C.Config, imgsz: int | None, backend: str | None) -> None:
    """``--tune``: measure the runtime settings for ``args.weights``, print the table, write the tuning file.
    With ``--data`` (bench), int8 is a candidate, judged on that data set's validation split."""
    from rtdet.deploy.tune import int8_judges, tune, weights_task, write_tuning
    from rtdet.tasks import get_task

    if not args.weights:
        raise C.ConfigError("--tune needs --weights: the settings it chooses are written next to them")
    task = get_task(weights_task(args.weights))
    C.refuse_other_tasks(cfg, task.name)
    val = calibration = None
    if cfg.explicit("data"):
        val, calibration = int8_judges(cfg, task, getattr(args, "calib_images", 200))
    report = tune(args.weights, imgsz, task.settings(cfg), runs=getattr(args, "runs", 150), backend=backend,
                  threads=args.threads, spin=getattr(args, "spin", None), val=val, calibration=calibration,
                  max_loss=getattr(args, "max_loss", None) or 0.005, metric=task.metric)
    print(report.table())
    print(f"wrote {write_tuning(report)}")


def _deploy_backend(args: argparse.Namespace, cfg: C.Config, imgsz: int | None) -> Any:
    """predict's and serve's backend: ``--tune`` first when asked, then :func:`rtdet.deploy.runtime.load_backend`
    (printing the tuned settings it applied), refusing settings of another task."""
    from rtdet.deploy.runtime import load_backend

    if args.tune:
        _tune(args, cfg, imgsz, cfg.eval.backend if cfg.explicit("backend") else None)
    name, default = _backend_name(args, cfg)
    backend = load_backend(args.weights, name, args.threads, imgsz, default=default)
    if backend.tuned:
        print(backend.tuned)
    C.refuse_other_tasks(cfg, backend.task)
    return backend


def _cmd_predict(args: argparse.Namespace) -> int:
    from rtdet.deploy.predict import predict_source
    from rtdet.tasks import get_task

    cfg, imgsz = _deploy_config(args)
    backend = _deploy_backend(args, cfg, imgsz)
    result = predict_source(backend, args.source, args.out, imgsz, settings=get_task(backend.task).settings(cfg))
    print(f"{len(result.records)} results, {len(result.files)} files written to {args.out}"
          + (f", {len(result.skipped)} skipped" if result.skipped else ""))
    if result.frames:
        print(f"video: {result.frames} frames, {result.video_fps:.1f} FPS achieved")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from rtdet.deploy.onnx import export_onnx
    from rtdet.models.load import load_trained

    cfg, imgsz = _deploy_config(args)
    if str(args.weights).lower().endswith(".onnx"):
        raise C.ConfigError(f"{args.weights} is already an ONNX export; export takes the .pt checkpoint")
    trained = load_trained(args.weights)
    C.refuse_other_tasks(cfg, trained.task)
    imgsz = imgsz or trained.config.data.imgsz
    out = Path(args.out or Path(args.weights).with_suffix(".onnx"))
    check: dict[str, float] = {}
    nms = {"conf": cfg.detect.conf, "iou": cfg.detect.iou, "max_det": cfg.detect.max_det} if args.nms else None
    export_onnx(trained.model, out, imgsz, args.dynamic, args.half, names=trained.names, report=check, nms=nms,
                category_ids=trained.meta.get("cat_ids"), argmax=args.argmax)
    if args.argmax:
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {imgsz} px, output labels); in-graph argmax equals "
              f"PyTorch's on {check['images']:.0f} images except near-ties at {check['labels']:.2%} of the pixels")
    elif args.nms:
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); in-graph NMS equals rtdet's postprocess on "
              f"{check['detections']:.0f} detections")
    else:
        images = check.pop("images")
        diffs = ", ".join(f"{k} {v:.2g}" for k, v in check.items())
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {imgsz} px); ONNX Runtime vs PyTorch on "
              f"{images:.0f} images: max |diff| {diffs}")
    if args.int8:
        return _export_int8(args, out)
    return 0


def _export_int8(args: argparse.Namespace, fp32: Path) -> int:
    from rtdet.deploy.images import image_files, read_image
    from rtdet.deploy.quantize import quantize_int8

    folder = Path(args.calib or "")
    files = image_files(folder)
    if not files:
        print(f"rtdet export --int8: --calib must be a folder of calibration images (e.g. the training images), "
              f"got {args.calib!r}", file=sys.stderr)
        return 2
    step = max(len(files) // args.calib_images, 1)
    chosen = files[::step][:args.calib_images]
    out = fp32.with_suffix(".int8.onnx")
    quantize_int8(fp32, out, (read_image(f) for f in chosen), method=args.calib_method)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): int8 convolutions calibrated ({args.calib_method}) on "
          f"{len(chosen)} images from {folder}; measure its accuracy with `rtdet val --weights {out} --data ...`")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from rtdet.deploy.bench import run_bench, write_json
    from rtdet.deploy.runtime import backend_for_model, load_backend
    from rtdet.tasks import get_task

    if bool(args.weights) == bool(args.model):
        raise C.ConfigError("rtdet bench: give either --weights or --model")
    cfg, imgsz = _deploy_config(args)
    if args.tune:
        _tune(args, cfg, imgsz, args.backend)
        return 0
    if args.weights:
        backend = load_backend(args.weights, args.backend, args.threads, imgsz, spin=args.spin)
        if backend.tuned:
            print(backend.tuned)
    else:
        from rtdet.models import build_model

        cfg = C.resolve_task_defaults(C.apply_overrides(cfg, {"model": args.model}))  # e.g. a segmenter's 480 px
        model = build_model(args.model, args.classes).eval()
        backend = backend_for_model(model, [str(i) for i in range(args.classes)], args.backend or "onnxruntime",
                                    args.threads, imgsz or cfg.data.imgsz, spin=bool(args.spin))
    C.refuse_other_tasks(cfg, backend.task)
    settings = get_task(backend.task).settings(cfg)
    result = run_bench(backend, imgsz, args.runs, args.warmup, settings=settings, threads=args.threads)
    print(result.table())
    if args.json:
        print(f"wrote {write_json(result, args.json)}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from rtdet.tasks import get_task

    try:
        from rtdet.serve.app import create_app
        from rtdet.serve.server import listen, run, url
    except ModuleNotFoundError as e:
        raise C.ConfigError(f"rtdet serve needs the serve extra (pip install 'rtdet[serve]'): {e}") from None
    for flag, value, ok, expected in (("--workers", args.workers, args.workers >= 1, ">= 1"),
                                      ("--queue", args.queue, args.queue >= 0, ">= 0"),
                                      ("--max-mb", args.max_mb, args.max_mb > 0, "> 0"),
                                      ("--port", args.port, 0 <= args.port < 65536, "0 to 65535")):
        if not ok:
            raise C.ConfigError(f"rtdet serve: {flag} must be {expected}, got {value:g}")
    cfg, imgsz = _deploy_config(args)
    if args.threads is None:  # a tuned thread count is one stream's; the workers share the cores
        from rtdet.serve.pool import threads_per_worker

        args.threads = threads_per_worker(args.workers)
    backend = _deploy_backend(args, cfg, imgsz)
    if imgsz and backend.fixed_imgsz not in (None, imgsz):
        raise C.ConfigError(f"{args.weights} is a static graph for {backend.fixed_imgsz} px input, not --imgsz {imgsz}")
    backend.imgsz = imgsz or backend.imgsz  # the size of requests that name none
    app = create_app(backend, get_task(backend.task).settings(cfg), Path(args.weights).name, args.workers, args.queue,
                     int(args.max_mb * 1e6))
    try:
        sock = listen(args.host, args.port)
    except OSError as e:
        raise C.ConfigError(f"rtdet serve: cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    where = url(sock)
    print(f"rtdet serve: {Path(args.weights).name} ({backend.model_name or 'model'}, {backend.task}, "
          f"{len(backend.names)} classes, {backend.name}, {backend.imgsz} px) on {where}\n"
          f"  page {where}/  API docs {where}/docs\n"
          f"  {args.workers} workers of {args.threads} inference thread{'s' * (args.threads > 1)} each, queue "
          f"{args.queue}, requests up to {args.max_mb:g} MB; Ctrl+C stops", flush=True)
    how = run(app, sock)
    stats = app.state.pool.stats()
    print(f"rtdet serve: stopped ({how}): {stats['done']} predictions, {stats['refused']} refused as busy", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtdet", description="Train, evaluate and deploy real-time vision models (detect, classify, segment)."
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    p = sub.add_parser("train", help="train a model", description="Train a model; settings from --config and flags. "
                       "The task comes from the model (rtdet-n: detect, rtdet-cls-n: classify, rtdet-seg-n: "
                       "segment); settings of "
                       "another task are refused.")
    add_config_flags(p, tuple(C.SECTIONS))
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("val", help="score weights on a data set's val split, or --split (official COCO numbers, "
                       "PASCAL VOC's with --metric voc07|voc, accuracy, or mIoU)")
    p.add_argument("--weights", required=True, help="checkpoint (.pt) or exported model (.onnx) to evaluate")
    p.add_argument("--save-json", action="store_true", help="detect: also write detections.json in COCO results "
                   "format, with the data set's own image and category ids; classify, segment: predictions.json "
                   "(per image: probabilities; pixel accuracy and IoU per class)")
    p.add_argument("--out", dest="val_out", help="folder for the pictures and metrics.json (default: <run>/val)")
    add_config_flags(p, names=VAL_SETTINGS)
    p.set_defaults(handler=_cmd_val)

    p = sub.add_parser("predict", help="run a model on images, folders, globs or videos")
    p.add_argument("--weights", required=True, help="checkpoint (.pt) or exported model (.onnx)")
    p.add_argument("--source", required=True, help="image, folder, glob or video file")
    p.add_argument("--out", default="runs/predict", help="output folder (default: runs/predict)")
    p.add_argument("--threads", type=int, help="inference threads (default: one per core, or the tuned number)")
    p.add_argument("--tune", action="store_true", help="first measure backends, threads and spinning on this "
                   "machine and keep the fastest next to the weights (<weights>.tune.json; see rtdet bench --tune)")
    add_config_flags(p, names=PREDICT_SETTINGS)
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser("export", help="export weights to ONNX (checked against PyTorch)")
    p.add_argument("--weights", required=True, help="checkpoint to export")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format (default: onnx)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch and image size")
    p.add_argument("--half", action="store_true", help="float16 weights")
    p.add_argument("--nms", action="store_true", help="detect: put class-aware NMS inside the graph (batch 1, "
                   "static; with --conf/--iou/--max-det)")
    p.add_argument("--argmax", action="store_true", help="segment: put the argmax over classes inside the graph "
                   "(output labels int64 [B,H,W] in the input frame instead of logits [B,K,h,w] on the model's grid)")
    p.add_argument("--int8", action="store_true", help="also write an int8 copy (<out>.int8.onnx), calibrated "
                   "on --calib images")
    p.add_argument("--calib", help="with --int8: folder of calibration images (e.g. the training images)")
    p.add_argument("--calib-images", type=int, default=200, help="with --int8: images used (default: 200)")
    p.add_argument("--calib-method", default="minmax", choices=["minmax", "percentile", "entropy"],
                   help="with --int8: activation range estimate (default: minmax)")
    p.add_argument("--out", help="output file (default: the weights' path with .onnx)")
    add_config_flags(p, names=EXPORT_SETTINGS)
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("bench", help="measure end-to-end latency and FPS")
    p.add_argument("--weights", help="checkpoint or ONNX model")
    p.add_argument("--model", help="model name, randomly initialised (speed only)")
    p.add_argument("--backend", choices=["torch", "onnxruntime", "openvino"],
                   help="runtime to measure (default: the tuned one, else onnxruntime)")
    p.add_argument("--json", metavar="OUT", help="write the numbers as JSON")
    p.add_argument("--threads", type=int, help="inference threads (default: one per core, or the tuned number)")
    p.add_argument("--runs", type=int, default=200, help="timed frames (default: 200; with --tune per candidate)")
    p.add_argument("--warmup", type=int, default=20, help="untimed frames first (default: 20)")
    p.add_argument("--classes", type=int, default=80, help="classes of a --model (default: 80)")
    p.add_argument("--spin", action=argparse.BooleanOptionalAction, help="ONNX Runtime threads busy-wait between "
                   "frames (faster on a CPU the model has to itself, slower on a shared one; default: no, or the "
                   "tuned choice)")
    p.add_argument("--tune", action="store_true", help="measure backends (ONNX Runtime, OpenVINO if installed), "
                   "threads, spinning and, with --data, int8 on this machine; print the table and write the "
                   "fastest to <weights>.tune.json, which predict, bench and the Python API then use")
    p.add_argument("--max-loss", type=float, default=0.005, help="with --tune --data: the largest drop of the "
                   "task's metric (absolute; mAP50-95, top-1 or mIoU) int8 may cost to be chosen (default: 0.005)")
    p.add_argument("--calib-images", type=int, default=200, help="with --tune --data: training images that "
                   "calibrate int8 (default: 200)")
    add_config_flags(p, names=BENCH_SETTINGS)
    p.set_defaults(handler=_cmd_bench)

    p = sub.add_parser("serve", help="HTTP inference server with a web page (needs the serve extra)",
                       description="Serve a model over HTTP: the page at /, the API (GET /health, GET /v1/models, "
                       "POST /v1/predict) documented at /docs. Decoding flags are the defaults of requests that "
                       "omit them. Stops cleanly on SIGINT/SIGTERM.")
    p.add_argument("--weights", required=True, help="checkpoint (.pt) or exported model (.onnx)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                   "only; 0.0.0.0: every network interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000; 0: a free one, printed)")
    p.add_argument("--workers", type=int, default=2, help="threads running the model, sharing one copy of it "
                   "(default: 2)")
    p.add_argument("--queue", type=int, default=16, help="requests that may wait for a worker; more are refused "
                   "with 503 and Retry-After (default: 16)")
    p.add_argument("--max-mb", type=float, default=20.0, help="largest request body in MB; larger ones get 413 "
                   "(default: 20)")
    p.add_argument("--threads", type=int, help="inference threads of each worker (default: the cores divided "
                   "among the workers, at least 1)")
    p.add_argument("--tune", action="store_true", help="first measure backends, threads and spinning for one stream "
                   "of frames on this machine and keep the fastest next to the weights (see rtdet bench --tune; "
                   "the threads stay those of --threads)")
    add_config_flags(p, names=SERVE_SETTINGS)
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("info", help="print a model's parameters and GFLOPs")
    p.add_argument("--model", default="rtdet-n", help="model name (default: rtdet-n)")
    p.add_argument("--imgsz", type=int, default=320, help="input size (default: 320)")
    p.add_argument("--classes", type=int, default=80, help="number of classes (default: 80)")
    p.add_argument("--act", default="", help="activation override: relu, lrelu, silu, frelu")
    p.add_argument("--norm", default="bn", choices=["bn", "gn"], help="normalization (default: bn)")
    p.set_defaults(handler=_cmd_info)

    _add_data_parser(sub)
    _add_metrics_parser(sub)

    p = sub.add_parser("demo", help="train and evaluate on built-in digits (offline): detect (rtdet-n on "
                       "generated digit photos) or classify (rtdet-cls-n on scikit-learn's digits)")
    p.add_argument("--task", default="detect", choices=["detect", "classify"], help="which demo (default: detect)")
    p.add_argument("--out", help="run folder (default: runs/demo, runs/demo-classify)")
    p.add_argument("--data-dir", default="datasets/digits", help="where the digits set lives (default: datasets/digits)")
    p.add_argument("--epochs", type=int, help="override the demo's epoch budget")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser("config", help="print the resolved config, or save it as YAML")
    p.add_argument("--save", metavar="YAML", help="write the resolved config to this file")
    add_config_flags(p, tuple(C.SECTIONS))
    p.set_defaults(handler=_cmd_config)
    return parser


def _add_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="convert, check, preview data sets; generate the digits set")
    dsub = p.add_subparsers(dest="data_command", metavar="<data command>", required=True)
    q = dsub.add_parser("convert", help="convert between YOLO, COCO and VOC")
    q.add_argument("source", nargs="?", help="data.yaml (YOLO) or VOC tree / images+annotations folder")
    q.add_argument("--from", dest="src_fmt", choices=["yolo", "coco", "voc"], required=True, help="source format")
    q.add_argument("--to", dest="dst_fmt", choices=["yolo", "coco"], required=True, help="target format")
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument("--ann", help="COCO annotations json (with --from coco)")
    q.add_argument("--images", help="COCO image folder (with --from coco)")
    q.add_argument("--keep-crowd", action="store_true", help="keep COCO crowd and VOC difficult boxes, as ordinary "
                   "boxes, when writing YOLO (its labels cannot mark them ignored)")
    q.add_argument("--copy", action="store_true", help="copy images into OUT/images (default: symlink)")
    q.set_defaults(handler=_cmd_data_convert)
    q = dsub.add_parser("check", help="read a whole data set and report every problem")
    q.add_argument("data", help="detect: data.yaml, COCO json, or VOC tree; classify: class folders, IDX files, CSV; "
                   "segment: data.yaml with <split>_masks folders, ADE20K folder, VOC tree with SegmentationClass")
    q.add_argument("--images", help="COCO image folder (default: inferred from the json's location)")
    q.add_argument("--split", action="append", help="check only this split (repeatable; default: all)")
    q.add_argument("--no-decode", action="store_true", help="skip the full decode of every image (faster)")
    q.add_argument("--task", choices=["detect", "classify", "segment"], help="the data's task (default: classify "
                   "for class folders, MNIST IDX files, CSV lists and sklearn-digits; segment for a data.yaml with "
                   "mask folders, ADE20K and a VOC tree with SegmentationClass but no Annotations; else detect)")
    q.set_defaults(handler=_cmd_data_check)
    q = dsub.add_parser("digits", help="generate the built-in digits demo set (YOLO format)")
    q.add_argument("--out", default="datasets/digits", help="output folder (default: datasets/digits)")
    q.add_argument("--train", type=int, default=2000, help="training images (default: 2000)")
    q.add_argument("--val", type=int, default=500, help="validation images (default: 500)")
    q.add_argument("--imgsz", type=int, default=320, help="image size (default: 320)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    q.set_defaults(handler=_cmd_data_digits)
    q = dsub.add_parser("preview", help="draw a grid of augmented samples with their boxes")
    q.add_argument("data", help="data.yaml, COCO json, VOC tree or 'digits'")
    q.add_argument("--out", default="preview.png", help="output picture (default: preview.png)")
    q.add_argument("--split", default="train", help="split to draw (default: train)")
    q.add_argument("--n", type=int, default=16, help="number of samples (default: 16)")
    q.add_argument("--no-augment", action="store_true", help="letterbox only, as in evaluation")
    q.add_argument("--images", help="COCO image folder (default: inferred from the json's location)")
    q.add_argument("--config", metavar="YAML", help="run config whose data settings (augmentation) to use")
    q.add_argument("--imgsz", type=int, help="image size (default: from the config, 320)")
    q.set_defaults(handler=_cmd_data_preview)


def _cmd_data_convert(args: argparse.Namespace) -> int:
    from rtdet.data.convert import convert

    paths, splits = convert(args.src_fmt, args.dst_fmt, args.out, args.source, args.ann, args.images,
                            keep_crowd=args.keep_crowd, copy=args.copy)
    for ds in splits.values():
        print(ds.report.summary())
    ignored = sum(int((ds.iscrowd | ds.difficult).sum()) for ds in splits.values())
    if args.dst_fmt == "yolo" and ignored and not args.keep_crowd:
        print(f"{ignored} crowd / difficult boxes left out: YOLO labels cannot mark them ignored (--keep-crowd writes "
              "them as ordinary boxes)")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from rtdet.data.check import (check_classification, check_data, check_segmentation, format_reports,
                                  is_classification, is_segmentation)

    task = args.task or ("classify" if is_classification(args.data) else
                         "segment" if is_segmentation(args.data) else "detect")
    if task == "classify":
        datasets = check_classification(args.data, splits=args.split)
    elif task == "segment":
        datasets = check_segmentation(args.data, splits=args.split, decode=not args.no_decode)
    else:
        datasets = check_data(args.data, args.images, decode=not args.no_decode, splits=args.split)
    print(format_reports(datasets))
    return 1 if any(ds.report.problems for ds in datasets) else 0


def _cmd_data_digits(args: argparse.Namespace) -> int:
    from rtdet.data.digits import generate_digits

    path = generate_digits(args.out, args.train, args.val, args.imgsz, args.seed)
    print(f"wrote {args.train} train + {args.val} val images: {path}")
    return 0


def _cmd_data_preview(args: argparse.Namespace) -> int:
    from rtdet.data import open_dataset
    from rtdet.data.preview import preview

    cfg = C.load_config(args.config, {"imgsz": args.imgsz} if args.imgsz else None)
    ds = open_dataset(args.data, args.split, images=args.images)
    print(f"wrote {preview(ds, args.out, cfg.data, n=args.n, train=not args.no_augment, detect=cfg.detect)}")
    return 0


def _add_metrics_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="score detections against ground truth")
    msub = p.add_subparsers(dest="metrics_command", metavar="<metrics command>", required=True)
    q = msub.add_parser("coco", help="the 12 official COCO numbers from a GT json and a detections json")
    q.add_argument("gt", help="COCO instances json (ground truth)")
    q.add_argument("detections", help="COCO results json: [{image_id, category_id, bbox, score}, ...]")
    q.add_argument("--json", metavar="OUT", help="write the 12 numbers as JSON")
    q.add_argument("--per-class", action="store_true", help="also print AP per category")
    q.add_argument("--plots", metavar="DIR", help="also print P/R/F1 per class and write PR, F1 and confusion PNGs here")
    q.set_defaults(handler=_cmd_metrics_coco)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log, shown = logging.getLogger("rtdet"), logging.StreamHandler(sys.stderr)  # its info lines reach the user
    log.addHandler(shown)  # (resumed from, stopped early, ...); for this call only
    log.setLevel(logging.INFO)
    try:
        return int(args.handler(args) or 0)
    except RtdetError as e:  # bad input a person can correct: one line, no traceback
        print(f"rtdet: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"rtdet: error: {e.filename or ''}: {e.strerror or e}" if e.filename else f"rtdet: error: {e}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(shown)


if __name__ == "__main__":
    sys.exit(main())
