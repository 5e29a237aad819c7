"""Offline Terraform provider-schema check of terraform/ (``make lint-tfschema``).

``terraform validate`` needs the providers downloaded; this check needs only their
published schemas, which the cdktf provider packages carry in their jsii assemblies
(``tools/tfschema/package.json`` pins one package per provider, at the release carrying
the provider version terraform/versions.tf selects; ``npm ci`` installs them into the
git-ignored tools/tfschema/node_modules/). Two steps:

``extract``: read each package's ``.jsii`` and write one compact JSON schema per provider
(resource and data source types, each with its arguments, nested blocks and which are
required). In the assembly a resource is a class extending ``cdktf.TerraformResource``
(``cdktf.TerraformDataSource`` for data sources) whose documentation links its Terraform
type; its initializer's ``config`` is a struct whose properties are the arguments (a
property without ``optional`` is required) and the nested blocks (properties typed by
another struct of the assembly, possibly in a list). Property names are camelCase; the
Terraform name is the anchor of the property's registry link (``...#lifecycle_rule``).

``check``: parse every ``*.tf`` under the directory with python-hcl2 and hold each
``resource``, ``data`` and ``provider`` block to its provider's schema: every argument
name is one the schema has, written as an argument (``x = ...``) and not as a block (and
the reverse), every nested block (also ``dynamic "x"``) is one the schema has at that
level, and every required argument and block is present. The provider of a block is its
``provider`` meta-argument or the type's prefix, resolved through ``required_providers``;
the schema's provider version must satisfy the version constraint there. A provider with
no offline schema fails the check unless it is listed in ``UNCHECKED_PROVIDERS`` with the
reason (none of upstash/upstash's releases is published as a cdktf package).

Limits: expressions are not evaluated (types and values are Terraform's business in CI's
``terraform validate``), and provider-framework nested *attributes* (``x = { ... }`` typed
as an object) would read as blocks here; none of the providers used declares one.
"""

from __future__ import annotations

import argparse
import difflib
import gzip
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "tools" / "tfschema" / "node_modules"
SCHEMA_FILE = NODE_MODULES / ".tfschema.json"
PACKAGES = (
    "@cdktf/provider-google",
    "@cdktf/provider-google-beta",
    "@cdktf/provider-random",
    "@cdktf/provider-time",
)
UNCHECKED_PROVIDERS = {
    "upstash/upstash": "no offline schema: upstash/upstash is not published as a cdktf package",
}

_TYPE_LINK = re.compile(r"\{@link https://registry\.terraform\.io/providers/\S+ ([\w-]+)\}")
_PROP_LINK = re.compile(r"\{@link https://registry\.terraform\.io/\S+#([a-z0-9_]+) [\w.]+#")
_BASES = {
    "cdktf.TerraformResource": "resources",
    "cdktf.TerraformDataSource": "data_sources",
    "cdktf.TerraformProvider": "provider",
}
META_ARGUMENTS = {
    "resources": {"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner"}
    | {"connection"},
    "data_sources": {"count", "for_each", "provider", "depends_on", "lifecycle"},
    "provider": {"alias", "version"},
}
_DYNAMIC_KEYS = {"for_each", "iterator", "labels", "content"}

# ---------------------------------------------------------------------------------------
# extract: jsii assemblies -> compact schemas
# ---------------------------------------------------------------------------------------


def load_assembly(package_dir: Path) -> dict[str, Any]:
    """The package's jsii assembly (following a compressed-assembly redirect)."""
    data: dict[str, Any] = json.loads((package_dir / ".jsii").read_text(encoding="utf-8"))
    if data.get("schema") == "jsii/file-redirect":
        raw = (package_dir / data["filename"]).read_bytes()
        if data.get("compression") == "gzip":
            raw = gzip.decompress(raw)
        data = json.loads(raw)
    return data


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _fqns(jsii_type: Any) -> Iterator[str]:
    """Every type reference inside a jsii type (unions and collections unwrapped)."""
    if isinstance(jsii_type, dict):
        if "fqn" in jsii_type:
            yield jsii_type["fqn"]
        for value in jsii_type.values():
            yield from _fqns(value)
    elif isinstance(jsii_type, list):
        for value in jsii_type:
            yield from _fqns(value)


class _Extractor:
    def __init__(self, assembly: dict[str, Any]) -> None:
        self.types: dict[str, Any] = assembly["types"]
        self.structs: dict[str, dict[str, Any]] = {}

    def struct(self, fqn: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        """``{"attributes": {name: required}, "blocks": {name: {"required", "schema"}}}``."""
        if fqn in self.structs:
            return self.structs[fqn]
        if fqn in seen:
            raise ValueError(f"recursive struct {fqn}")
        attributes: dict[str, bool] = {}
        blocks: dict[str, Any] = {}
        for prop in self.types[fqn].get("properties", []):
            link = _PROP_LINK.search(prop.get("docs", {}).get("remarks", ""))
            name = link.group(1) if link else _snake(prop["name"])
            required = not prop.get("optional", False)
            # Only this assembly's types are in self.types (cdktf.IResolvable is not).
            nested = [f for f in _fqns(prop["type"]) if self.types.get(f, {}).get("datatype")]
            if nested:
                schema = self.struct(nested[0], (*seen, fqn))
                blocks[name] = {"required": required, "schema": schema}
            else:
                attributes[name] = required
        result = {"attributes": attributes, "blocks": blocks}
        self.structs[fqn] = result
        return result

    def provider(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"resources": {}, "data_sources": {}, "provider": None}
        for jsii_type in self.types.values():
            kind = _BASES.get(jsii_type.get("base", ""))
            link = _TYPE_LINK.search(jsii_type.get("docs", {}).get("summary", ""))
            if kind is None or link is None:
                continue
            params = jsii_type.get("initializer", {}).get("parameters", [])
            config = next((p["type"]["fqn"] for p in params if p["name"] == "config"), None)
            body = self.struct(config) if config else {"attributes": {}, "blocks": {}}
            if kind == "provider":
                schema["provider"] = body
            else:
                schema[kind][link.group(1)] = body
        return schema


def extract(node_modules: Path = NODE_MODULES) -> dict[str, Any]:
    """``{source: {"version", "package", "resources", "data_sources", "provider"}}``."""
    schemas: dict[str, Any] = {}
    for package in PACKAGES:
        package_dir = node_modules / package
        meta = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
        provider = meta["cdktf"]["provider"]
        source = provider["name"].removeprefix("registry.terraform.io/")
        schemas[source] = {
            "version": provider["version"],
            "package": f"{meta['name']}@{meta['version']}",
            **_Extractor(load_assembly(package_dir)).provider(),
        }
    return schemas


# ---------------------------------------------------------------------------------------
# check: terraform/ against the schemas
# ---------------------------------------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text.split("-")[0]))


def satisfies(version: str, constraints: str) -> bool:
    """Terraform's version constraint syntax (``~> 6.30``, ``>= 1.2, < 2.0``, ``= 3.1``)."""
    have = _version(version)
    for part in filter(None, (p.strip() for p in constraints.split(","))):
        match = re.fullmatch(r"(~>|>=|<=|!=|=|>|<)?\s*v?([\d.]+)", part)
        if match is None:
            raise ValueError(f"unsupported version constraint {part!r}")
        op, want = match.group(1) or "=", _version(match.group(2))
        width = max(len(have), len(want), 3)
        a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        ok = {
            "=": a == b,
            "!=": a != b,
            ">": a > b,
            ">=": a >= b,
            "<": a < b,
            "<=": a <= b,
            # ~> 6.30 allows 6.30 up to (not including) 7.0; ~> 0.12.1 up to 0.13.
            "~>": a >= b and a[: len(want) - 1] == b[: len(want) - 1],
        }[op]
        if not ok:
            return False
    return True


@dataclass
class Module:
    """One directory of .tf files: its providers and its blocks."""

    directory: Path
    required: dict[str, dict[str, str]] = field(default_factory=dict)
    blocks: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)


def _parse(path: Path) -> dict[str, Any]:
    import hcl2
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(
        explicit_blocks=True, strip_string_quotes=True, with_comments=False
    )
    result: dict[str, Any] = hcl2.loads(
        path.read_text(encoding="utf-8"), serialization_options=options
    )
    return result


def _where(path: Path, text: str, kind: str, labels: tuple[str, ...]) -> str:
    quoted = r"\s+".join(f'"{re.escape(label)}"' for label in labels)
    match = re.search(rf"^{kind}\s+{quoted}\s*\{{", text, re.M)
    line = text[: match.start()].count("\n") + 1 if match else 0
    return f"{path}:{line}"


def load_modules(directory: Path) -> list[Module]:
    modules: dict[Path, Module] = {}
    for path in sorted(directory.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        module = modules.setdefault(path.parent, Module(path.parent))
        doc = _parse(path)
        text = path.read_text(encoding="utf-8")
        for block in doc.get("terraform", []):
            for providers in block.get("required_providers", []):
                for name, spec in providers.items():
                    if isinstance(spec, dict):
                        module.required[name] = {k: str(v) for k, v in spec.items()}
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        where = _where(path, text, kind, (rtype, name))
                        module.blocks.append((kind, f"{rtype}.{name}", where, body))
        for block in doc.get("provider", []):
            for name, body in block.items():
                where = _where(path, text, "provider", (name,))
                module.blocks.append(("provider", name, where, body))
    return list(modules.values())


def _is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def _all_names(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, str]]:
    """(argument name, the block path it belongs to) over the whole schema."""
    for name in schema["attributes"]:
        yield name, path or "the top level"
    for name, block in schema["blocks"].items():
        yield from _all_names(block["schema"], f"{path}{name}." if path else f"{name}.")


def _unknown(name: str, schema: dict[str, Any], root: dict[str, Any], here: str) -> str:
    known = [*schema["attributes"], *schema["blocks"]]
    hint = difflib.get_close_matches(name, known, n=1)
    elsewhere = sorted({p.rstrip(".") for n, p in _all_names(root) if n == name})
    message = f"{here}: unsupported argument {name!r}"
    if hint:
        message += f" (did you mean {hint[0]!r}?)"
    if elsewhere:
        message += f" (the schema has it in {', '.join(elsewhere)})"
    return message


def check_body(
    body: dict[str, Any],
    schema: dict[str, Any],
    root: dict[str, Any],
    here: str,
    meta: frozenset[str] = frozenset(),
) -> list[str]:
    """Problems of one block body against its schema (recursively)."""
    problems: list[str] = []
    present: set[str] = set()
    for key, value in body.items():
        if key == "__is_block__" or key in meta:
            continue
        if key == "dynamic" and isinstance(value, list):
            for dynamic in value:
                for name, spec in dynamic.items():
                    present.add(name)
                    problems += _check_dynamic(name, spec, schema, root, here)
            continue
        present.add(key)
        if _is_block(value):
            if key in schema["attributes"]:
                problems.append(f"{here}: {key!r} is an argument: write {key} = ...")
            elif key not in schema["blocks"]:
                problems.append(_unknown(key, schema, root, here))
            else:
                for inner in value:
                    problems += check_body(
                        inner, schema["blocks"][key]["schema"], root, f"{here} > {key}"
                    )
        elif key in schema["blocks"]:
            problems.append(f"{here}: {key!r} is a block: write {key} {{ ... }}")
        elif key not in schema["attributes"]:
            problems.append(_unknown(key, schema, root, here))
    for name, required in sorted(schema["attributes"].items()):
        if required and name not in present:
            problems.append(f"{here}: the argument {name!r} is required")
    for name, block in sorted(schema["blocks"].items()):
        if block["required"] and name not in present:
            problems.append(f"{here}: at least one {name!r} block is required")
    return problems


def _check_dynamic(
    name: str, spec: Any, schema: dict[str, Any], root: dict[str, Any], here: str
) -> list[str]:
    if name not in schema["blocks"]:
        if name in schema["attributes"]:
            return [f"{here}: dynamic {name!r}: {name!r} is an argument, not a block"]
        return [_unknown(name, schema, root, here)]
    problems = [
        f"{here}: dynamic {name!r}: unsupported argument {key!r}"
        for key in spec
        if key not in _DYNAMIC_KEYS and key != "__is_block__"
    ]
    contents = spec.get("content", [])
    if not _is_block(contents) or len(contents) != 1:
        return [*problems, f"{here}: dynamic {name!r} needs one content block"]
    return problems + check_body(
        contents[0], schema["blocks"][name]["schema"], root, f"{here} > {name}"
    )


def _provider_of(kind: str, address: str, body: dict[str, Any]) -> str:
    if kind == "provider":
        return address
    explicit = str(body.get("provider", ""))
    if explicit:
        return explicit.removeprefix("${").removesuffix("}").split(".")[0]
    return address.split("_", 1)[0]


def check(directory: Path, schemas: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, notes): every block of every module under ``directory``."""
    problems: list[str] = []
    notes: list[str] = []
    for module in load_modules(directory):
        for local, spec in sorted(module.required.items()):
            source = spec.get("source", f"hashicorp/{local}").removeprefix("registry.terraform.io/")
            schema = schemas.get(source)
            if schema and not satisfies(schema["version"], spec.get("version", "")):
                problems.append(
                    f"{module.directory}: {local} {spec.get('version')!r} does not select "
                    f"{source} {schema['version']}, the offline schema's version "
                    f"({schema['package']}): update tools/tfschema/package.json"
                )
        for kind, address, where, body in module.blocks:
            local = _provider_of(kind, address, body)
            source = module.required.get(local, {}).get("source", f"hashicorp/{local}")
            source = source.removeprefix("registry.terraform.io/")
            schema = schemas.get(source)
            label = f"{where} {'data.' if kind == 'data' else ''}{address}"
            if schema is None:
                if source in UNCHECKED_PROVIDERS:
                    notes.append(f"{label}: not checked ({UNCHECKED_PROVIDERS[source]})")
                else:
                    problems.append(f"{label}: no offline schema for provider {source}")
                continue
            if kind == "provider":
                group, target = "provider", schema["provider"]
            else:
                group = "resources" if kind == "resource" else "data_sources"
                target = schema[group].get(address.split(".")[0])
            if target is None:
                kind_name = "resource" if kind == "resource" else "data source"
                problems.append(
                    f"{label}: {source} {schema['version']} has no {kind_name} "
                    f"{address.split('.')[0]!r}"
                )
                continue
            meta = frozenset(META_ARGUMENTS[group])
            problems += check_body(body, target, target, label, meta)
    return problems, notes


def load_schemas(path: Path = SCHEMA_FILE) -> dict[str, Any]:
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `make lint-tfschema` (npm ci + extract)")
    schemas: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schemas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.tfschema", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ext = sub.add_parser("extract", help="jsii assemblies -> one JSON schema file")
    ext.add_argument("--node-modules", type=Path, default=NODE_MODULES)
    ext.add_argument("--out", type=Path, default=SCHEMA_FILE)
    chk = sub.add_parser("check", help="check the .tf files under DIRECTORY")
    chk.add_argument("directory", type=Path)
    chk.add_argument("--schema", type=Path, default=SCHEMA_FILE)
    args = parser.parse_args(argv)
    if args.command == "extract":
        schemas = extract(args.node_modules)
        args.out.write_text(json.dumps(schemas, separators=(",", ":")), encoding="utf-8")
        for source, schema in schemas.items():
            print(
                f"{source} {schema['version']} ({schema['package']}): "
                f"{len(schema['resources'])} resources, "
                f"{len(schema['data_sources'])} data sources"
            )
        return 0
    problems, notes = check(args.directory, load_schemas(args.schema))
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(problem, file=sys.stderr)
    blocks = sum(len(m.blocks) for m in load_modules(args.directory))
    print(f"{blocks} blocks checked against the provider schemas: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
