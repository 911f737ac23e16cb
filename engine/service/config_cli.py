"""``options-engine check-config``: validate engine.toml and print the effective config.

Exit 0 with the effective config (every default filled in) as JSON on stdout; exit 2 with every error on
stderr, one ``path: reason`` per line. For paper/live it also checks that the keys can be found (without
printing them) and that live trading is confirmed.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import msgspec

from engine.service.config import (
    ConfigError,
    EngineConfig,
    _struct_in,
    is_hot,
    load_config,
)
from engine.service.secrets import SecretError, load_credentials, require_live_confirmation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default="engine.toml", help="config file (default: engine.toml)")
    parser.add_argument(
        "--reference",
        metavar="SECTION",
        nargs="?",
        const="all",
        help="print every field of SECTION (or all) with its default, hot/cold and docstring, as TOML comments",
    )
    parser.add_argument(
        "--update-reference",
        metavar="FILE",
        help="rewrite the generated field lists between '# --- begin generated: NAME ---' markers in FILE",
    )
    parser.add_argument(
        "--no-secrets",
        action="store_true",
        help="do not check that the Alpaca keys and live confirmation are present",
    )


def _field_docs(cls: type) -> dict[str, str]:
    """name -> attribute docstring, read from the source of the class and its bases (subclass wins)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, msgspec.Struct)) or klass is msgspec.Struct:
            continue
        try:
            src = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(src).body[0].body  # type: ignore[attr-defined]
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                nxt = body[i + 1] if i + 1 < len(body) else None
                doc = ""
                if (
                    isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)
                ):
                    doc = " ".join(nxt.value.value.split()).replace("``", "")
                if doc or node.target.id not in out:
                    out[node.target.id] = doc
    return out


def _toml(value: Any) -> str:
    """A builtin value as a TOML literal (for the commented defaults); None (TOML has no null) is "(unset)"."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def _non_defaults(item: Any) -> Any:
    """A struct as a dict of the fields that differ from their defaults (keeps array defaults readable)."""
    if not isinstance(item, msgspec.Struct):
        return item
    out = {}
    for f in msgspec.structs.fields(item):
        v = getattr(item, f.name)
        if f.default is msgspec.NODEFAULT or v != f.default:
            out[f.encode_name] = v
    return out


def config_reference(section: str = "all") -> str:
    """Every field of the config (or of one top-level section) as commented TOML: default, HOT/COLD, docstring."""
    lines: list[str] = []

    def walk(cls: type, path: tuple[str, ...], default: Any, array: bool = False) -> None:
        docs = _field_docs(cls)
        lines.append(f"# [[{'.'.join(path)}]]" if array else f"# [{'.'.join(path)}]")
        nested: list[tuple[type, tuple[str, ...], Any, bool]] = []
        for f in msgspec.structs.fields(cls):
            hot = "HOT" if is_hot((*path, f.name)) else "COLD"
            if default is not None:
                value = getattr(default, f.name, msgspec.NODEFAULT)
            elif f.default_factory is not msgspec.NODEFAULT:
                value = f.default_factory()
            else:
                value = f.default
            sub = _struct_in(f.type)
            args = typing.get_args(f.type)
            if sub is not None and isinstance(value, msgspec.Struct):
                nested.append((sub, (*path, f.name), value, False))
                lines.append(f"# {f.encode_name}: table [{'.'.join((*path, f.name))}] below   ({hot})")
            else:
                if typing.get_origin(f.type) in (tuple, list) and args and _struct_in(args[0]) is not None:
                    nested.append((_struct_in(args[0]), (*path, f.name), None, True))
                    value = [_non_defaults(v) for v in value] if value is not msgspec.NODEFAULT else value
                shown = "(required)" if value is msgspec.NODEFAULT else _toml(msgspec.to_builtins(value))
                lines.append(f"# {f.encode_name} = {shown}   ({hot})")
            lines.extend(f"#     {w}" for w in textwrap.wrap(docs.get(f.name, ""), 100))
        for sub_cls, sub_path, sub_default, is_array in nested:
            walk(sub_cls, sub_path, sub_default, is_array)

    def instance(cls: type) -> Any:
        try:
            return cls()
        except (TypeError, msgspec.ValidationError, ValueError):
            return None

    sections: list[tuple[Any, tuple[str, ...]]] = []
    for f in msgspec.structs.fields(EngineConfig):
        if f.name == "strategies":
            holder = _struct_in(f.type)
            for sf in msgspec.structs.fields(holder):
                if (strategy := _struct_in(sf.type)) is not None:
                    sections.append((strategy, ("strategies", sf.name)))
        elif (cls := _struct_in(f.type)) is not None:
            sections.append((cls, (f.name,)))
    for cls, path in sections:
        if section in ("all", path[0], ".".join(path)):
            walk(cls, path, instance(cls))
            lines.append("")
    return "\n".join(lines)


_BEGIN = "# --- begin generated: "
_END = "# --- end generated ---"


def update_reference(text: str) -> str:
    """``text`` with every generated block (between markers) replaced by the current field reference."""
    out: list[str] = []
    lines = iter(text.splitlines())
    for line in lines:
        out.append(line)
        if line.startswith(_BEGIN):
            name = line[len(_BEGIN) :].rstrip(" -")
            out.extend(config_reference(name).rstrip("\n").splitlines()[1:])  # the table line sits above
            for skipped in lines:
                if skipped.startswith(_END):
                    out.append(skipped)
                    break
    return "\n".join(out) + "\n"


def main(args: argparse.Namespace) -> int:
    if args.update_reference:
        path = Path(args.update_reference)
        path.write_text(update_reference(path.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"updated the generated field lists in {path}")
        return 0
    if args.reference:
        print(config_reference(args.reference))
        return 0
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: {len(exc.issues)} error(s)", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    if not args.no_secrets:
        problems = []
        for check in (require_live_confirmation, load_credentials):
            try:
                check(cfg)
            except SecretError as exc:
                problems.append(str(exc))
        if problems:
            print(f"{args.config}: {len(problems)} error(s)", file=sys.stderr)
            for p in problems:
                print(f"  {p}", file=sys.stderr)
            return 2
    data = cfg.to_builtins()
    data["strategies"] = {k: v for k, v in data["strategies"].items() if v is not None}
    print(json.dumps(data, indent=2, default=str))
    return 0
