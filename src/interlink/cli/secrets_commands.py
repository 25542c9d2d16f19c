"""``interlink secrets``: master key maintenance, directly on ``INTERLINK_DATABASE_URL`` (server side).

* ``generate-master-key`` prints a new ``kid:base64`` entry for ``INTERLINK_MASTER_KEYS``.
* ``status`` counts secrets per master key id.
* ``rotate-master-key`` re-encrypts every secret under the primary key. When the master keys live
  in ``<data_dir>/local-secrets.json`` (the embedded default) it first generates a new key and
  makes it primary in that file, keeping the old keys for decryption.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import typer

from interlink.cli.common import load_settings, refuse_unless_migrated
from interlink.core.crypto import (
    CryptoError,
    Keyring,
    generate_master_key,
    local_secrets_path,
    parse_master_keys,
    write_local_file,
)
from interlink.core.settings import Settings

if TYPE_CHECKING:  # heavy modules load only when a command runs, keeping the CLI quick to start
    from interlink.core.secrets import ReencryptResult
    from interlink.runtime import Runtime

app = typer.Typer(
    help="Encrypted secrets: master keys and re-encryption (works directly on the database).",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"interlink: {message}", err=True)
    return typer.Exit(code=code)


def _runtime(settings: Settings) -> Runtime:
    from interlink.connections.catalogue import CatalogueError
    from interlink.runtime import Runtime

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return Runtime(settings)
    except CryptoError as exc:
        raise _fail(f"master keys: {exc}", 2) from exc
    except CatalogueError as exc:
        raise _fail(str(exc), 2) from None


def _describe(kid: str, keyring: Keyring) -> str:
    if kid == keyring.primary_kid:
        return "primary"
    if kid in keyring.key_ids:
        return "configured, not primary"
    return "NOT CONFIGURED: these secrets cannot be decrypted"


def _report(result: ReencryptResult) -> None:
    typer.echo(f"re-encrypted {result.reencrypted} secret(s) under master key {result.primary_key_id}")
    typer.echo(f"already under {result.primary_key_id}: {result.already_primary}")
    for secret_id, kid in result.failed:
        typer.echo(f"FAILED {secret_id}: cannot decrypt with master key {kid!r}", err=True)
    if result.remaining:
        typer.echo(f"still under other master keys: {result.remaining}")


@app.command("generate-master-key")
def generate(
    kid: str = typer.Option(None, help="Key id (letters, digits, _ -); random when omitted."),
) -> None:
    """Print a new ``kid:base64`` master key entry (put it first in INTERLINK_MASTER_KEYS)."""
    entry = generate_master_key(kid)
    try:
        parse_master_keys(entry)
    except CryptoError as exc:
        raise _fail(str(exc), 2) from exc
    typer.echo(entry)


@app.command()
def status() -> None:
    """Count secrets per master key id and show which keys this process has."""
    settings = load_settings()
    refuse_unless_migrated(settings, "run")

    async def _run() -> tuple[dict[str, int], Keyring, bool]:
        from interlink.core.secrets import count_by_key_id
        from interlink.encrypted_columns import ENCRYPTED_COLUMNS

        runtime = _runtime(settings)
        try:
            async with runtime.db.unit_of_work(write=False) as session:
                counts = await count_by_key_id(session, ENCRYPTED_COLUMNS)
            return counts, runtime.keyring, runtime.local_secrets.master_keys_from_file
        finally:
            await runtime.stop()

    counts, keyring, from_file = asyncio.run(_run())
    source = str(local_secrets_path(settings.data_dir)) if from_file else "INTERLINK_MASTER_KEYS"
    typer.echo(f"master keys from {source}; primary: {keyring.primary_kid}")
    for kid in sorted(set(counts) | set(keyring.key_ids)):
        typer.echo(f"{kid}: {counts.get(kid, 0)} secret(s) ({_describe(kid, keyring)})")
    if any(kid not in keyring.key_ids for kid in counts):
        raise typer.Exit(code=1)


def _add_primary_to_file(settings: Settings, current: Keyring) -> str:
    """Generate a key, make it primary in the local secrets file, keep the others. Returns its id."""
    path = local_secrets_path(settings.data_dir)
    stored = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    existing = stored.get("master_keys", "")
    taken = {kid for kid, _ in parse_master_keys(existing)} if existing else set()
    entry = generate_master_key()
    while entry.split(":", 1)[0] in taken | set(current.key_ids):
        entry = generate_master_key()
    stored["master_keys"] = f"{entry},{existing}" if existing else entry
    write_local_file(path, stored)
    return entry.split(":", 1)[0]


@app.command("rotate-master-key")
def rotate_master_key(
    batch_size: int = typer.Option(100, min=1, max=10_000, help="Secrets per transaction."),
    reencrypt_only: bool = typer.Option(
        False, "--reencrypt-only", help="Local key file: do not add a new key; only re-encrypt."
    ),
) -> None:
    """Re-encrypt every secret under the primary master key.

    Keys from ``<data_dir>/local-secrets.json``: a new key is generated and made primary there
    first (old keys stay for decryption). Keys from ``INTERLINK_MASTER_KEYS``: put the new key
    first there (``interlink secrets generate-master-key``), restart every process, then run this.
    Safe to interrupt and rerun.
    """
    settings = load_settings()
    refuse_unless_migrated(settings, "run")

    async def _run() -> tuple[ReencryptResult, dict[str, int], Keyring, bool, str | None]:
        from interlink.core.secrets import count_by_key_id, reencrypt_all
        from interlink.encrypted_columns import ENCRYPTED_COLUMNS

        runtime = _runtime(settings)
        try:
            from_file = runtime.local_secrets.master_keys_from_file
            new_kid = None
            if from_file and not reencrypt_only:
                new_kid = _add_primary_to_file(settings, runtime.keyring)
                spec = json.loads(local_secrets_path(settings.data_dir).read_text())["master_keys"]
                runtime.keyring = Keyring.from_spec(spec)
            result = await reencrypt_all(runtime, batch_size=batch_size, columns=ENCRYPTED_COLUMNS)
            async with runtime.db.unit_of_work(write=False) as session:
                counts = await count_by_key_id(session, ENCRYPTED_COLUMNS)
            return result, counts, runtime.keyring, from_file, new_kid
        finally:
            await runtime.stop()

    result, counts, keyring, from_file, new_kid = asyncio.run(_run())
    if new_kid:
        path = local_secrets_path(settings.data_dir)
        typer.echo(f"generated master key {new_kid} and made it primary in {path}")
    _report(result)
    unused = [kid for kid in keyring.key_ids if kid != keyring.primary_kid and not counts.get(kid)]
    if unused and result.complete:
        where = str(local_secrets_path(settings.data_dir)) if from_file else "INTERLINK_MASTER_KEYS"
        typer.echo(
            f"no secret uses master key(s) {', '.join(unused)} any more; once every Interlink process "
            f"runs with {keyring.primary_kid} as primary, they may be removed from {where}"
        )
    if from_file and new_kid:
        typer.echo(
            "restart running Interlink processes so they encrypt with the new key, then run "
            "`interlink secrets rotate-master-key --reencrypt-only` to catch secrets written meanwhile"
        )
    if not result.complete:
        raise typer.Exit(code=1)
