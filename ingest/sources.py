"""Load and validate ``sources.yaml`` into ``Source`` objects, with errors that name the fix."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kb.errors import ConfigError

KINDS = ("url", "urls", "feed", "sitemap", "path")
DOCTYPES = ("news", "tos", "court", "blog", "summary", "other")   # summary: written by us about others' reporting
SOURCE_KEYS = set(KINDS) | {"name", "doctype", "publisher", "language", "refresh", "title", "enabled", "exclude",
                                  "follow_symlinks"}
DEFAULT_KEYS = {"refresh", "doctype", "language", "publisher"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Source:
    """One entry of sources.yaml."""

    name: str
    kind: str                      # url | urls | feed | sitemap | path
    targets: tuple[str, ...]       # URLs, or one path
    doctype: str = "other"
    publisher: str = ""
    language: str = "auto"
    refresh_seconds: int = 6 * 3600
    title: str = ""
    exclude: tuple[str, ...] = ()  # glob patterns of file names to skip in a folder
    follow_symlinks: bool = False  # read symlinks in a folder that point outside it
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    file: str = field(default="", compare=False, hash=False)   # the sources file that declares it


def parse_duration(value: Any, where: str) -> int:
    """'6h', '30m', '1d', '45s', '2w' or a number of seconds -> seconds."""
    if isinstance(value, (int, float)) and value > 0:
        return int(value)
    m = _DURATION.match(str(value).strip().lower())
    if not m or int(m.group(1)) == 0:
        raise ConfigError(f"{where}: refresh {value!r} is not a duration; write e.g. 30m, 6h, 1d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _check_url(url: Any, where: str) -> str:
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url.strip()):
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL; write it as https://host/path")
    return url.strip()


def _one_source(entry: Any, index: int, defaults: dict[str, Any], file: Path) -> Source:
    where = f"{file}: sources[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each source must be a mapping with a name and one of {', '.join(KINDS)}")
    name = entry.get("name")
    if name is not None:
        where = f"{file}: source {name!r}"
    unknown = set(entry) - SOURCE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                          f"allowed keys are {', '.join(sorted(SOURCE_KEYS))}")
    if not name or not isinstance(name, str):
        raise ConfigError(f"{where}: missing 'name'; give every source a unique slug such as 'openai-terms'")
    if not _NAME.match(name):
        raise ConfigError(f"{where}: name {name!r} must be a lowercase slug (letters, digits, . _ -)")
    kinds = [k for k in KINDS if k in entry]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: needs exactly one of {', '.join(KINDS)} (found {', '.join(kinds) or 'none'})")
    kind = kinds[0]
    merged = {**defaults, **entry}
    if kind == "path":
        raw = entry["path"]
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"{where}: 'path' must be a file or folder path")
        p = Path(raw).expanduser()
        targets: tuple[str, ...] = (str(p if p.is_absolute() else (file.parent / p)),)
    elif kind == "urls":
        urls = entry["urls"]
        if not isinstance(urls, list) or not urls:
            raise ConfigError(f"{where}: 'urls' must be a non-empty list of URLs")
        targets = tuple(dict.fromkeys(_check_url(u, where) for u in urls))
    else:
        targets = (_check_url(entry[kind], where),)
    doctype = str(merged.get("doctype", "other"))
    if doctype not in DOCTYPES:
        raise ConfigError(f"{where}: doctype {doctype!r} is not one of {', '.join(DOCTYPES)}")
    language = str(merged.get("language", "auto")).lower()
    if language != "auto" and not re.match(r"^[a-z]{2,3}$", language):
        raise ConfigError(f"{where}: language {language!r} must be 'auto' or an ISO 639-1 code such as 'en'")
    exclude = entry.get("exclude") or []
    if isinstance(exclude, str):
        exclude = [exclude]
    if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
        raise ConfigError(f"{where}: 'exclude' must be a list of file-name patterns such as ['README.md', '*.tsv']")
    follow = entry.get("follow_symlinks", False)
    if not isinstance(follow, bool):
        raise ConfigError(f"{where}: 'follow_symlinks' must be true or false")
    return Source(name=name, kind=kind, targets=targets, doctype=doctype, exclude=tuple(exclude),
                  follow_symlinks=follow,
                  publisher=str(merged.get("publisher") or ""), language=language,
                  refresh_seconds=parse_duration(merged.get("refresh", "6h"), where),
                  title=str(entry.get("title") or ""), config=dict(entry), file=str(file))


def parse_sources(data: Any, file: Path) -> list[Source]:
    """Validate parsed YAML into sources (raises ConfigError naming the entry and the fix)."""
    if not isinstance(data, dict) or "sources" not in data:
        raise ConfigError(f"{file}: expected a mapping with a 'sources:' list (see README, 'sources.yaml')")
    extra = set(data) - {"sources", "defaults"}
    if extra:
        raise ConfigError(f"{file}: unknown top-level key(s) {', '.join(sorted(map(str, extra)))}; "
                          "only 'defaults' and 'sources' are allowed")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - DEFAULT_KEYS:
        raise ConfigError(f"{file}: 'defaults' may only set {', '.join(sorted(DEFAULT_KEYS))}")
    entries = data.get("sources") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{file}: 'sources' must be a list of entries, each starting with '- name: ...'")
    out: list[Source] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        src = _one_source(entry, i, defaults, file)
        if src.name in seen:
            raise ConfigError(f"{file}: source name {src.name!r} is used twice; names must be unique")
        seen.add(src.name)
        if entry.get("enabled", True) is not False:
            out.append(src)
    return out


#: Most nodes a sources file may expand to once its aliases are followed: nested aliases ("billion
#: laughs") make a 1 KB file expand to gigabytes when anything walks it.
MAX_EXPANDED_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses documents whose aliases expand past ``MAX_EXPANDED_NODES`` nodes."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None and _expanded_size(node) > MAX_EXPANDED_NODES:
            raise yaml.YAMLError(f"its aliases (*name) expand to more than {MAX_EXPANDED_NODES:,} entries; "
                                 "write the entries out instead of nesting aliases")
        return node


def _expanded_size(root: Any) -> int:
    """How many nodes a YAML graph holds with every alias expanded (capped), computed without expanding it:
    iteratively (deep nesting cannot overflow the stack), each shared node's size computed once."""
    cap = MAX_EXPANDED_NODES + 1
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in sizes and not ready:
            continue
        children = (list(node.value) if isinstance(node, yaml.SequenceNode) else
                    [x for kv in node.value for x in kv] if isinstance(node, yaml.MappingNode) else [])
        if ready:
            sizes[id(node)] = min(cap, 1 + sum(sizes.get(id(c), 1) for c in children))
            continue
        sizes[id(node)] = 1  # a recursive alias counts once
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def load_sources(path: Path | str) -> list[Source]:
    """Read and validate a sources file."""
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"{file}: no such sources file; create it (see README, 'sources.yaml') or pass --sources FILE")
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_BoundedLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc}); fix the indentation or quoting there") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text; save it as UTF-8") from exc
    except RecursionError as exc:
        raise ConfigError(f"{file}: nested too deeply to read; flatten the lists and mappings") from exc
    return parse_sources(data, file)


# -- the managed file: sources added with `python -m ingest add` or the app's Add sources page ----------
MANAGED_NAME = "sources.added.yaml"


def managed_path(path: Path | str) -> Path:
    """The managed sources file beside the user's sources file (``sources.added.yaml``)."""
    return Path(path).parent / MANAGED_NAME


@dataclass
class SourceSet:
    """The sources of the user's file and of the managed file beside it, user's first.

    ``problems`` lists what was wrong with the managed file (its sources are then left out, the user's
    own still run); ``origin`` maps each source name to the file it came from."""

    sources: list[Source]
    files: list[Path]
    origin: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def managed_broken(self) -> bool:
        return bool(self.problems)


def load_all_sources(path: Path | str, strict: bool = False) -> SourceSet:
    """The user's sources file and, when present, the managed ``sources.added.yaml`` beside it.

    A name used in both files is a ``ConfigError`` naming both. A broken managed file never stops the
    user's own sources: it is reported in ``problems`` and left out (``strict`` raises instead, for
    commands that must see every source, such as prune and add)."""
    user = Path(path)
    own = load_sources(user)
    managed = managed_path(user)
    result = SourceSet(sources=list(own), files=[user], origin={s.name: user for s in own})
    if managed.resolve() == user.resolve() or not managed.exists():
        return result
    try:
        added = load_sources(managed)
    except ConfigError as exc:
        if strict:
            raise
        result.problems.append(
            f"the managed sources file {managed} is broken and was skipped ({exc}); your own sources in {user} "
            f"still run. Fix {managed} or delete it (its documents stay in the index), then run again")
        return result
    clash = sorted({s.name for s in added} & set(result.origin))
    if clash:
        raise ConfigError(f"source name(s) {', '.join(repr(n) for n in clash)} appear in both {user} and {managed}; "
                          f"names must be unique across both files: rename or remove one of them")
    result.files.append(managed)
    result.sources.extend(added)
    result.origin.update({s.name: managed for s in added})
    return result
