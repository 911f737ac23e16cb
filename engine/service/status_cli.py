"""``options-engine status``: ask a running engine (its metrics server's ``/status``) and print the answer."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

from engine.service.config import ConfigError, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default="engine.toml",
        help="config file to find the metrics address in (default: engine.toml)",
    )
    parser.add_argument("--url", help="status URL (default: http://<metrics_host>:<metrics_port>/status)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the engine")
    parser.add_argument("--json", action="store_true", help="print the raw JSON")


def _url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    try:
        cfg = load_config(args.config)
        host, port = cfg.engine.metrics_host, cfg.engine.metrics_port
    except ConfigError:
        host, port = "127.0.0.1", 9464
    return f"http://{host}:{port}/status"


def main(args: argparse.Namespace) -> int:
    url = _url(args)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"options-engine status: no engine answered at {url}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    for key, value in body.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        print(f"{key}: {shown}")
    return 0
