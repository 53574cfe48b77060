"""``python -m calmcall keys create --org NAME | revoke KEY_ID | list``.

Keys look like ``cc_<id>.<secret>``; only a hash of the secret is stored, so the key is
shown once, alone on the last line of ``create``'s output (``KEY=$(… | tail -n1)``).
"""

from __future__ import annotations

import json
import sys

from ..config import get_settings
from ..inputs import InputError
from ..storage import AttemptStore, StoreUnavailable


def _store() -> AttemptStore:
    return AttemptStore(get_settings().resolved_database_url)


def _org_name(name: str) -> str:
    name = (name or "").strip()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("organisation name is not valid UTF-8 text") from None
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise InputError("organisation name must be 1-200 printable characters")
    return name


def keys_command(args) -> int:
    try:
        if args.keys_command == "create":
            org = _org_name(args.org)
            store = _store()
            key_id, key = store.create_key(org)
            print(f"Created API key {key_id} for organisation {org!r}.")
            print(f"Revoke it with: python -m calmcall keys revoke {key_id}")
            print("The key is shown only now; store it in your portal's secrets:")
            print(key)
            return 0
        if args.keys_command == "revoke":
            store = _store()
            if store.revoke_key(args.key_id):
                print(f"revoked {args.key_id}")
                return 0
            print(f"error: no active key {args.key_id!r} (unknown or already revoked)", file=sys.stderr)
            return 2
        if args.keys_command == "list":
            keys = _store().list_keys()
            if getattr(args, "json", False):
                for k in keys:
                    print(json.dumps(k, ensure_ascii=False))
                return 0
            if not keys:
                print("no API keys yet; create one with: python -m calmcall keys create --org NAME")
            for k in keys:
                state = "revoked" if k["revoked"] else "active"
                print(f"{k['key_id']:18} {state:8} {k['created_at'][:19]}  {k['org']}")
            return 0
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"error: unknown keys command {args.keys_command!r}", file=sys.stderr)
    return 2
