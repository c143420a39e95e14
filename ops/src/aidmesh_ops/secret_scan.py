"""No secret in the repository: every file git tracks is searched for the shapes secrets take.

    python -m aidmesh_ops.secret_scan          # exit 1 naming each file and line (never the value)

What it finds:

- private keys in PEM (`-----BEGIN ... PRIVATE KEY-----`), as `aidmesh token keygen` writes;
- a literal value given to an `AIDMESH_*_KEY`, `_KEK`, `_KEYS`, `_PASSWORD`, `_SECRET` or
  `_TOKEN` variable, as an env file, a shell script, YAML or `setenv(...)` would give it;
  `_FILE` variables, `$VAR`,
  `${...}`, `{...}` and `<placeholder>` values are not secrets;
- a data key as deploy/local generates them (protection's data key, registration's KEK,
  a clinical key): base64 of exactly 32 bytes, with or without a `<key id>:` before it;
- a password in a URL (`postgresql://user:password@host`), `<password>` placeholders aside.

A made-up value a test needs (a fake password to parse) is kept by writing `not a secret`
on its line or the line before. Secrets live in the environment, in files the runtime reads
(`AIDMESH_..._FILE`, aidmesh_runtime.settings), locally in var/secrets/ (git-ignored).
"""

from __future__ import annotations

import base64
import binascii
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PRAGMA = "not a secret"

_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_SECRET_NAME = r"AIDMESH_[A-Z0-9_]*(?:KEY|KEK|KEYS|PASSWORD|SECRET|TOKEN)\b(?!_FILE)"  # noqa: S105
_VALUE = r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s'\"`},;)]+)"
# NAME=value (env files, shell, `${NAME:-default}`), NAME: value (YAML, JSON, dicts).
_ASSIGNED = re.compile(rf"\b(?P<name>{_SECRET_NAME})['\"]?\]?(?P<op>\s*(?:=|:-|:(?!-))\s*){_VALUE}")
# monkeypatch.setenv("NAME", "value"), os.environ.setdefault(...)
_SET = re.compile(rf"set(?:env|default)\(\s*['\"](?P<name>{_SECRET_NAME})['\"]\s*,\s*{_VALUE}")
_NOT_A_VALUE = re.compile(r"^['\"]?(?:['\"]?$|[$<{%(]|\.\.\.|\*+['\"]?$)")
_BASE64_KEY = re.compile(
    r"(?<![A-Za-z0-9+/=_-])([A-Za-z0-9+/]{43}=|[A-Za-z0-9_-]{43}=)(?![\w+/=-])"
)
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"]+:(?P<password>[^\s@/'\"]+)@")
_PLACEHOLDER = re.compile(r"^(?:<[^>]*>|\$\{?\w+\}?|\*+|\.\.\.|password|PASSWORD|x+)$")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _is_32_byte_key(text: str) -> bool:
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 32


def _is_literal(match: re.Match[str], *, python: bool) -> bool:
    value = match.group("value")
    if _NOT_A_VALUE.match(value):
        return False
    quoted = value[0] in "'\""
    # In Python an unquoted value is a name or an expression, unless written as in an env
    # file (`NAME=value`, no spaces, inside a string).
    return quoted or not python or match.groupdict().get("op") == "="


def scan_text(text: str, path: str) -> Iterator[Finding]:
    """The secrets in one file's text (the values are never repeated)."""
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if PRAGMA in line or (number > 1 and PRAGMA in lines[number - 2]):
            continue
        if _PRIVATE_KEY.search(line):
            yield Finding(path, number, "a private key (PEM)")
        for match in [*_ASSIGNED.finditer(line), *_SET.finditer(line)]:
            if _is_literal(match, python=path.endswith(".py")):
                yield Finding(path, number, f"a literal value for {match.group('name')}")
        for match in _BASE64_KEY.finditer(line):
            if _is_32_byte_key(match.group(1)):
                yield Finding(path, number, "a 32-byte key in base64 (a data key or KEK)")
        for match in _URL_PASSWORD.finditer(line):
            if not _PLACEHOLDER.match(match.group("password")):
                yield Finding(path, number, "a password in a URL")


def scan_files(root: Path, paths: Iterable[str]) -> list[Finding]:
    findings: list[Finding] = []
    for name in paths:
        try:
            text = (root / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue  # binary, a submodule, or deleted in the working tree
        findings.extend(scan_text(text, name))
    return findings


def tracked_files(root: Path) -> list[str]:
    """What git tracks, and the new files it does not ignore (what `git add -A` would take)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=root,
        capture_output=True,
        check=True,
    )
    return [p for p in listed.stdout.decode().split("\0") if p]


def is_ignored(root: Path, path: str) -> bool:
    """Whether git ignores `path` (so that a secret written there is never committed)."""
    checked = subprocess.run(  # noqa: S603 - git with a path as its argument
        ["git", "check-ignore", "-q", "--no-index", path],  # noqa: S607
        cwd=root,
        check=False,
    )
    return checked.returncode == 0


def scan_repository(root: Path = REPO_ROOT) -> list[Finding]:
    return scan_files(root, tracked_files(root))


def main() -> int:
    findings = scan_repository()
    for finding in findings:
        print(finding, file=sys.stderr)
    if findings:
        print(
            f"{len(findings)} secret(s) in tracked files: move them to the environment or a"
            " file (AIDMESH_..._FILE), or mark a made-up test value `not a secret`",
            file=sys.stderr,
        )
        return 1
    print("no secrets in tracked files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
