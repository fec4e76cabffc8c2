"""`linkstate orginfo ...`: decode, encode and digest OrgInfo packets from files or standard input.

Owns: the `orginfo` command group. `decode` prints the JSON form (proto.jsonform), `encode` turns that JSON
back into canonical bytes, `digest` prints the MD5 of a packet's canonical form.
Invariant: bad input is exit 2 and exactly one line on stderr: `error: <reason> at byte <offset>` for packets,
`error: <reason> at <json path>` for JSON; never a traceback.
May import: click, the standard library, proto, linkstate.cli.common.
"""

from __future__ import annotations

import json
from typing import Any

import click

from linkstate.cli.common import HelpGroup, fail, print_json, read_input
from proto.codec import Decoded, decode_strict, decode_tolerant, encode
from proto.errors import DecodeError, EncodeError
from proto.jsonform import JsonFormError, carried_digest, from_json, to_json


def _decode(path: str, tolerant: bool) -> Decoded:
    data = read_input(path)
    try:
        return decode_tolerant(data) if tolerant else decode_strict(data)
    except DecodeError as exc:
        fail(f"{exc.reason} at byte {exc.offset}{'' if tolerant else _tolerant_hint(data)}")


def _tolerant_hint(data: bytes) -> str:
    """A hint when strict decoding failed but the printed/sanitized form decodes (the seed's sample does)."""
    try:
        decode_tolerant(data)
    except DecodeError:
        return ""
    return "; this is the printed/sanitized form: try --tolerant"


def _load_json(path: str) -> Any:
    raw = read_input(path)
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        fail(f"input is not UTF-8 JSON at byte {exc.start}")
    except json.JSONDecodeError as exc:
        fail(f"invalid JSON: {exc.msg} at byte {exc.pos}")


@click.group("orginfo", cls=HelpGroup)
def orginfo() -> None:
    """Decode, encode and digest OrgInfo packets (the link-state table)."""


@orginfo.command("decode")
@click.argument("file", default="-", metavar="[FILE|-]")
@click.option("--tolerant", is_flag=True, help="Accept the printed/sanitized form; repairs become warnings.")
def decode_cmd(file: str, tolerant: bool) -> None:
    """Print a packet as JSON (strict by default)."""
    print_json(to_json(_decode(file, tolerant)))


@orginfo.command("encode")
@click.argument("file", default="-", metavar="[FILE|-]")
@click.option(
    "--keep-digest",
    is_flag=True,
    help="Carry the JSON's `digest` field in the frame instead of the computed one.",
)
def encode_cmd(file: str, keep_digest: bool) -> None:
    """Write the canonical bytes of a JSON table (as `decode` prints it) to standard output."""
    obj = _load_json(file)
    try:
        org = from_json(obj)
        carried = carried_digest(obj) if keep_digest else None
    except JsonFormError as exc:
        fail(f"{exc.reason} at {exc.path}")
    try:
        raw = encode(org, digest=carried)
    except EncodeError as exc:
        fail(f"{exc} at $")
    click.echo(raw, nl=False)  # bytes go to the binary stream unchanged


@orginfo.command("digest")
@click.argument("file", default="-", metavar="[FILE|-]")
@click.option("--tolerant", is_flag=True, help="Accept the printed/sanitized form.")
def digest_cmd(file: str, tolerant: bool) -> None:
    """Print the MD5 of a packet's canonical form (32 hex digits)."""
    click.echo(_decode(file, tolerant).computed_digest)


def register(cli: click.Group) -> None:
    cli.add_command(orginfo)
