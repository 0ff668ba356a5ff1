"""Load a strategy from a Python file: the built-ins by name, a trader's own by path.

`--strategy ema_momentum`, `--strategy sma_cross`, or `--strategy path/to/file.py:ClassName`
(`:ClassName` may be left out when the file holds one strategy class). The file is compiled and
run in a module of its own, the class is checked against the protocol of `trading.strategy`,
its declared `params` are merged with the overrides (`--strategy-param name=value`, parsed to
the type of the declared default) and the class is built once with them, so that a file that
does not compile, lacks a method or refuses its parameters is refused here, before any session
starts, with the file, the line and the problem (`StrategyError`). The session records the
file, its SHA-256 and the parameters it ran with.
"""
from __future__ import annotations

import ast
import hashlib
import math
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "strategies"
BUILTINS = {"ema_momentum": "EmaMomentum", "sma_cross": "SmaCross"}
METHODS = ("warm_up", "on_candle", "state", "restore")
PARAM_TYPES = (bool, int, float, str)
MAX_FILE_BYTES = 1_000_000


class StrategyError(ValueError):
    """A strategy that cannot run: says the file, the line (when known) and the problem."""

    def __init__(self, path: Path | str, problem: str, line: int | None = None) -> None:
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"strategy {where}: {problem}")


@dataclass(frozen=True)
class StrategySpec:
    """A loaded, checked strategy: build a fresh instance with `build()`."""

    ref: str  # as the user gave it (a built-in name or path[:Class])
    path: Path
    class_name: str
    name: str  # the class's own `name`
    sha256: str
    params: dict[str, Any]  # every declared parameter, with the overrides applied
    declared: dict[str, Any] = field(default_factory=dict)  # the file's own defaults
    cls: type | None = field(default=None, compare=False, repr=False)

    def build(self):
        try:
            return self.cls(**self.params)
        except Exception as e:  # noqa: BLE001 - checked at load; a file changed since?
            raise StrategyError(self.path, f"{type(e).__name__}: {e}",
                                _class_line(self)) from None

    def describe(self) -> dict[str, Any]:
        """What the report and the journal keep of it."""
        return {"strategy": self.name, "strategy_ref": self.ref,
                "strategy_file": str(self.path), "strategy_class": self.class_name,
                "strategy_sha256": self.sha256, "strategy_params": dict(self.params)}


def split_ref(ref: str) -> tuple[Path, str | None]:
    """(file, class name or None) for a built-in name or `path[:Class]`."""
    ref = str(ref).strip()
    if not ref:
        raise StrategyError("(none)", "no strategy given")
    if ref in BUILTINS:
        return BUILTIN_DIR / f"{ref}.py", BUILTINS[ref]
    path, cls = ref, ""
    head, _, tail = ref.rpartition(":")
    if tail.isidentifier() and head.endswith(".py"):  # C:\x.py alone is a path, not x.py:C
        path, cls = head, tail
    if not path.endswith(".py"):
        raise StrategyError(ref, f"not a built-in strategy ({', '.join(BUILTINS)}) nor a "
                            f"file path ending in .py[:ClassName]")
    return Path(path).expanduser(), (cls or None)


def parse_param_value(name: str, text: Any, default: Any) -> Any:
    """An override typed like its declared default; ValueError naming the parameter."""
    if not isinstance(text, str):
        value = text
    elif isinstance(default, bool):
        low = text.strip().lower()
        if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ValueError(f"{name}: expected true or false, got {text!r}")
        value = low in ("true", "1", "yes", "on")
    elif isinstance(default, int):
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"{name}: expected an integer, got {text!r}") from None
    elif isinstance(default, float):
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"{name}: expected a number, got {text!r}") from None
    else:
        value = text
    # a value read back from settings or a recording is checked as strictly as typed text
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ValueError(f"{name}: expected an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
    elif not isinstance(value, str):
        raise ValueError(f"{name}: expected text, got {value!r}")
    return value


def parse_param_args(items: list[str]) -> dict[str, str]:
    """`name=value` strings (from --strategy-param) to a dict; ValueError on a bad one."""
    out: dict[str, str] = {}
    for item in items or []:
        name, eq, value = str(item).partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise ValueError(f"expected name=value, got {item!r}")
        out[name] = value
    return out


def load_strategy(ref: str, overrides: dict[str, Any] | None = None,
                  build: bool = True) -> StrategySpec:
    """Load, check and build once (`build=False`: all but building it, to show its declared
    parameters); raise StrategyError naming the file, line and problem."""
    path, class_name = split_ref(ref)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StrategyError(path, "no such file") from None
    except OSError as e:
        raise StrategyError(path, f"cannot read it: {e.strerror or e}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise StrategyError(path, f"larger than {MAX_FILE_BYTES:,} bytes: not a strategy file")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StrategyError(path, f"not UTF-8 text (byte {e.start})") from None
    try:
        code = compile(source, str(path), "exec")
        tree = ast.parse(source, str(path))
    except SyntaxError as e:
        raise StrategyError(path, f"syntax error: {e.msg}", e.lineno) from None
    classes = {n.name: n.lineno for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    digest = hashlib.sha256(raw).hexdigest()
    module = types.ModuleType(f"btc_laptop_strategy_{digest[:12]}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses and pickling look a module up
    try:
        exec(code, module.__dict__)  # noqa: S102 - the trader's own strategy file
    except Exception as e:  # noqa: BLE001 - any failure is the file's: say where
        sys.modules.pop(module.__name__, None)
        raise StrategyError(path, f"importing it raised {type(e).__name__}: {e}",
                            _line_in(e, path)) from None
    if class_name is None:
        found = [n for n, obj in module.__dict__.items() if isinstance(obj, type)
                 and getattr(obj, "__module__", None) == module.__name__
                 and callable(getattr(obj, "on_candle", None))]
        if len(found) != 1:
            raise StrategyError(path, "name the class: file.py:ClassName (strategy classes "
                                f"here: {', '.join(found) or 'none'})")
        class_name = found[0]
    cls = module.__dict__.get(class_name)
    if not isinstance(cls, type):
        here = ", ".join(classes) or "none"
        raise StrategyError(path, f"no class {class_name} (classes in the file: {here})")
    line = classes.get(class_name)
    missing = [m for m in METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise StrategyError(path, f"class {class_name} lacks the strategy method(s) "
                            f"{', '.join(missing)} (a strategy has {', '.join(METHODS)})", line)
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise StrategyError(path, f"class {class_name} has no `name` (text)", line)
    declared = getattr(cls, "params", {})
    if not isinstance(declared, dict) or not all(
            isinstance(k, str) and k.isidentifier() and isinstance(v, PARAM_TYPES)
            for k, v in declared.items()):
        raise StrategyError(path, f"class {class_name}: `params` must map names to int, float, "
                            "bool or text defaults", line)
    params = dict(declared)
    for key, value in (overrides or {}).items():
        if key not in declared:
            known = ", ".join(declared) or "none"
            raise StrategyError(path, f"unknown parameter {key!r} (declared: {known})", line)
        try:
            params[key] = parse_param_value(key, value, declared[key])
        except ValueError as e:
            raise StrategyError(path, f"bad parameter {e}", line) from None
    spec = StrategySpec(ref=str(ref), path=path, class_name=class_name, name=name.strip(),
                        sha256=digest, params=params, declared=dict(declared), cls=cls)
    if not build:
        return spec
    try:
        cls(**params)
    except Exception as e:  # noqa: BLE001 - the class refused its parameters
        raise StrategyError(path, f"bad parameters: {e}" if isinstance(e, ValueError)
                            else f"building it raised {type(e).__name__}: {e}",
                            _line_in(e, path) or line) from None
    return spec


def _line_in(exc: BaseException, path: Path) -> int | None:
    """The last line of `path` in the exception's traceback (where the file went wrong)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename) == path:
        line = exc.lineno
    return line


def _class_line(spec: StrategySpec) -> int | None:
    try:
        tree = ast.parse(spec.path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    return next((n.lineno for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                 and n.name == spec.class_name), None)


def user_strategy_files(folder: Path) -> list[Path]:
    """The .py files of a per-user strategies folder, by name (missing folder: none)."""
    try:
        return sorted(p for p in Path(folder).glob("*.py") if p.is_file())
    except OSError:
        return []


if __name__ == "__main__":  # python -m trading.runtime.strategies FILE[:Class]: check a file
    try:
        s = load_strategy(sys.argv[1], parse_param_args(sys.argv[2:]))
    except (StrategyError, ValueError) as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    print(f"{s.name}: {s.path} {s.class_name} sha256={s.sha256[:12]} params={s.params}")
