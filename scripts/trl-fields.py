#!/usr/bin/env python3
"""List every field of TRL's trainer configs for one pinned TRL version, as JSON.

Reads the sources with Python's `ast` (nothing is imported or executed), so it needs neither torch nor
transformers installed:

  * TRL's configs and `_BaseConfig` come from a git clone of huggingface/trl at a tag
    (`git show TAG:trl/trainer/...`);
  * `transformers.TrainingArguments` comes from a transformers wheel (a zip; `training_args.py` and the
    modules holding the enums its defaults name).

Each field is listed once per config, in dataclass order (base class fields first, an override keeps the
position of the field it overrides, as `dataclasses.fields()` does), with the class that declares it last in
the MRO (`DPOConfig`, `_BaseConfig` or `TrainingArguments`), the classes it overrides, its annotation, its
default (a JSON value where the source is a literal, an enum member resolved to its value, or a
`default_factory` lambda returning a literal), the default's source text, and the help text.

Usage (the committed fixture was made with exactly this):
  python3 scripts/trl-fields.py --trl-repo /work/.mirror/huggingface+trl/repo --tag v1.9.0 \
      --transformers-wheel /opt/pypi/files/transformers-5.17.0-py3-none-any.whl \
      --out test/fixtures/trl/v1.9.0/config-fields.json
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

CONFIGS = {
    # config class -> file in the TRL repo
    "DPOConfig": "trl/trainer/dpo_config.py",
    "SFTConfig": "trl/trainer/sft_config.py",
    "RewardConfig": "trl/trainer/reward_config.py",
    "GRPOConfig": "trl/trainer/grpo_config.py",
    "RLOOConfig": "trl/trainer/rloo_config.py",
    # v1.9.0 keeps PPO (the "PPOv2" trainer) under trl.experimental.
    "PPOConfig": "trl/experimental/ppo/ppo_config.py",
}
BASE_CONFIG_FILE = "trl/trainer/base_config.py"
TRAINING_ARGS_FILE = "transformers/training_args.py"

MISSING = object()


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def find_class(tree: ast.Module, name: str) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise SystemExit(f"class {name} not found")


def const_str(node: ast.AST | None) -> str | None:
    """A string literal, or an implicit/explicit concatenation of string literals."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = const_str(node.left), const_str(node.right)
        if left is not None and right is not None:
            return left + right
    return None


class EnumIndex:
    """`Class.MEMBER = "value"` assignments of every class in a set of modules (for enum defaults)."""

    def __init__(self) -> None:
        self.members: dict[tuple[str, str], object] = {}

    def add_module(self, source: str) -> None:
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.ClassDef):
                continue
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                    try:
                        value = ast.literal_eval(stmt.value)
                    except ValueError:
                        continue
                    self.members.setdefault((node.name, stmt.targets[0].id), value)

    def resolve(self, node: ast.AST) -> object:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return self.members.get((node.value.id, node.attr), MISSING)
        return MISSING


def literal(node: ast.AST, enums: EnumIndex) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        pass
    resolved = enums.resolve(node)
    if resolved is not MISSING:
        return resolved
    if isinstance(node, ast.Lambda):  # default_factory=lambda: [...]
        return literal(node.body, enums)
    if isinstance(node, ast.Name) and node.id in ("list", "dict"):  # default_factory=list
        return [] if node.id == "list" else {}
    return MISSING


def class_fields(source: str, class_name: str, enums: EnumIndex) -> list[dict]:
    cls = find_class(ast.parse(source), class_name)
    out = []
    for stmt in cls.body:
        if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
            continue
        name = stmt.target.id
        annotation = ast.unparse(stmt.annotation)
        if annotation.startswith("ClassVar"):
            continue
        entry: dict = {"name": name, "type": annotation}
        default_node: ast.AST | None = None
        init = True
        help_text = None
        value = stmt.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "field":
            for kw in value.keywords:
                if kw.arg in ("default", "default_factory"):
                    default_node = kw.value
                    entry["default_kind"] = kw.arg
                elif kw.arg == "init":
                    init = bool(ast.literal_eval(kw.value))
                elif kw.arg == "metadata" and isinstance(kw.value, ast.Dict):
                    for k, v in zip(kw.value.keys, kw.value.values):
                        if isinstance(k, ast.Constant) and k.value == "help":
                            help_text = const_str(v)
        elif value is not None:
            default_node = value
            entry["default_kind"] = "default"
        if default_node is None:
            entry["required"] = True
            entry["default"] = None
            entry["default_source"] = None
        else:
            v = literal(default_node, enums)
            entry["default"] = None if v is MISSING else v
            entry["default_source"] = ast.unparse(default_node)
            if v is MISSING:
                entry["default_unresolved"] = True
                if isinstance(default_node, ast.Name):
                    # a class-body variable set conditionally (e.g. `default_optim`, which depends on torch's version)
                    candidates = [
                        literal(n.value, enums)
                        for n in ast.walk(cls)
                        if isinstance(n, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == default_node.id for t in n.targets)
                    ]
                    if candidates and MISSING not in candidates:
                        entry["default_candidates"] = candidates
        if not init:
            entry["init"] = False
        entry["help"] = help_text
        out.append(entry)
    return out


def merge(chain: list[tuple[str, list[dict]]]) -> list[dict]:
    """Fields of a dataclass hierarchy, base first: an override replaces the entry in place (as
    `dataclasses.fields()` orders them) and records the classes it overrides."""
    merged: dict[str, dict] = {}
    for class_name, fields in chain:
        for f in fields:
            entry = dict(f, declared_in=class_name)
            if f["name"] in merged:
                prev = merged[f["name"]]
                entry["overrides"] = prev.get("overrides", []) + [
                    {"class": prev["declared_in"], "default": prev["default"], "default_source": prev["default_source"]}
                ]
                if entry["help"] is None:
                    entry["help"] = prev["help"]
            merged[f["name"]] = entry
    ordered = []
    for entry in merged.values():
        ordered.append(
            {
                k: entry[k]
                for k in (
                    "name",
                    "declared_in",
                    "type",
                    "default",
                    "default_source",
                    "default_kind",
                    "default_unresolved",
                    "default_candidates",
                    "required",
                    "init",
                    "overrides",
                    "help",
                )
                if k in entry
            }
        )
    return ordered


def write_ts(result: dict, path: Path, json_path: Path) -> None:
    lines = [
        f"// Generated by scripts/trl-fields.py from {json_path.as_posix()}: do not edit.",
        f"// TRL {result['trl']['tag']} ({result['trl']['commit']}), transformers {result['transformers']['tag']}"
        " (TrainingArguments).",
        "",
        "export interface TrlField {",
        "  name: string;",
        "  /** The class that declares the field last in the MRO. */",
        "  declaredIn: string;",
        "  /** TRL's default (JSON); for a default that depends on the environment, its possible values. */",
        "  default: unknown;",
        "  defaultCandidates?: unknown[];",
        "}",
        "",
        f"export const TRL_VERSION = {json.dumps(result['trl']['tag'])};",
        f"export const TRL_COMMIT = {json.dumps(result['trl']['commit'])};",
        f"export const TRANSFORMERS_VERSION = {json.dumps(result['transformers']['tag'])};",
        "",
    ]
    for config in ("DPOConfig", "SFTConfig"):
        lines.append(f"export const {config}_FIELDS: readonly TrlField[] = [")
        for f in result["configs"][config]["fields"]:
            entry = {"name": f["name"], "declaredIn": f["declared_in"], "default": f["default"]}
            if "default_candidates" in f:
                entry["defaultCandidates"] = f["default_candidates"]
            lines.append("  " + json.dumps(entry, ensure_ascii=False) + ",")
        lines.append("];")
        lines.append("")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trl-repo", required=True, help="git directory of a huggingface/trl clone")
    ap.add_argument("--tag", required=True, help="TRL tag, e.g. v1.9.0")
    ap.add_argument("--transformers-wheel", required=True, help="transformers-X.Y.Z-py3-none-any.whl")
    ap.add_argument(
        "--transformers-why",
        default=(
            "TRL v1.9.0 requires transformers>=4.56.2 (and !=5.1.0); its main CI (tests.yml) installs the latest "
            "transformers release, a 5.x (v1.9.0 code gates features on transformers>=5.13). 5.17.0 is the earliest "
            "5.x release at hand here that satisfies that, so TrainingArguments is read from it."
        ),
    )
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--ts-out",
        help="also write the DPOConfig/SFTConfig names, declaring classes and defaults as a TypeScript module "
        "(src/train/trl-fields.generated.ts), which the config validation reads at run time",
    )
    args = ap.parse_args()

    commit = git(args.trl_repo, "rev-parse", f"{args.tag}^{{commit}}").strip()
    commit_date = git(args.trl_repo, "log", "-1", "--format=%cI", commit).strip()

    wheel = Path(args.transformers_wheel)
    m = re.match(r"transformers-([0-9][^-]*)-", wheel.name)
    if not m:
        raise SystemExit(f"{wheel}: not a transformers wheel name")
    tf_version = m.group(1)
    enums = EnumIndex()
    with zipfile.ZipFile(wheel) as z:
        training_args_src = z.read(TRAINING_ARGS_FILE).decode()
        # enums named by defaults (IntervalStrategy, SaveStrategy, HubStrategy, SchedulerType, OptimizerNames...)
        for name in z.namelist():
            if name.endswith(".py") and (
                name in (TRAINING_ARGS_FILE, "transformers/trainer_utils.py", "transformers/debug_utils.py")
                or name.startswith("transformers/utils/")
            ):
                enums.add_module(z.read(name).decode())
    wheel_sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()

    pyproject = git(args.trl_repo, "show", f"{commit}:pyproject.toml")
    req = re.search(r'"(transformers>=[^"]+)"', pyproject)
    trl_requires = req.group(1) if req else None

    trl_sources = {f: git(args.trl_repo, "show", f"{commit}:{f}") for f in [BASE_CONFIG_FILE, *CONFIGS.values()]}
    for src in trl_sources.values():
        enums.add_module(src)

    training_args = class_fields(training_args_src, "TrainingArguments", enums)
    base = class_fields(trl_sources[BASE_CONFIG_FILE], "_BaseConfig", enums)

    trl_source = {"repo": "huggingface/trl", "tag": args.tag, "commit": commit, "commit_date": commit_date}
    tf_source = {
        "repo": "huggingface/transformers",
        "tag": f"v{tf_version}",
        "distribution": wheel.name,
        "distribution_sha256": wheel_sha256,
        "file": TRAINING_ARGS_FILE,
        "trl_requires": trl_requires,
        "why_this_version": args.transformers_why,
    }
    result: dict = {
        "generated_by": "scripts/trl-fields.py",
        "trl": trl_source,
        "transformers": tf_source,
        "classes": {
            "TrainingArguments": {"source": dict(tf_source, file=TRAINING_ARGS_FILE)},
            "_BaseConfig": {"source": dict(trl_source, file=BASE_CONFIG_FILE), "extends": "TrainingArguments"},
        },
        "configs": {},
    }
    for config, path in CONFIGS.items():
        own = class_fields(trl_sources[path], config, enums)
        for cls_node in ast.parse(trl_sources[path]).body:
            if isinstance(cls_node, ast.ClassDef) and cls_node.name == config:
                bases = [ast.unparse(b) for b in cls_node.bases]
                if bases != ["_BaseConfig"]:
                    raise SystemExit(f"{config} extends {bases}, expected _BaseConfig")
        result["classes"][config] = {"source": dict(trl_source, file=path), "extends": "_BaseConfig"}
        fields = merge([("TrainingArguments", training_args), ("_BaseConfig", base), (config, own)])
        result["configs"][config] = {
            "source": dict(trl_source, file=path),
            "field_count": len(fields),
            "fields": fields,
        }

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(out)
    if args.ts_out:
        write_ts(result, Path(args.ts_out), out)
    counts = ", ".join(f"{k} {v['field_count']}" for k, v in result["configs"].items())
    print(f"{out}: TRL {args.tag} ({commit[:12]}), transformers {tf_version}: {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
