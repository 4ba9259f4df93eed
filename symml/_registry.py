"""One shape for every registry of rules (lowering, Taylor, sparsity, activations).

A registry is a table from a key (a sympy class, a JAX primitive, a name) to a
rule. Every stage exposes it the same way:

- `register_x(key, rule=None)` adds or replaces a rule, and is a decorator when
  `rule` is omitted; the key and the rule are validated, a mistake being the
  stage's [`SymmlError`][symml.SymmlError] subclass;
- `x_rules()` is a read-only view of the table;
- a call that takes extra rules looks them up first, through
  `ChainMap(extra, table)`, so the global table never changes.
"""

from collections import ChainMap
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from ._errors import SymmlError

__all__ = ["Registry"]

K = TypeVar("K")
R = TypeVar("R")


class Registry(Generic[K, R]):
    """A table `{key: rule}` with validated registration and per-call extension.

    **Arguments:**

    - `what`: what a rule is, for messages (e.g. "Taylor rule").
    - `error`: the stage's error class.
    - `is_key`: whether an object is a valid key.
    - `key_hint`: what a key must be, as a sentence fragment for messages
      (e.g. "a `jax.extend.core.Primitive`").
    - `register_name`: the public registration function, for messages.
    - `key_name`, `rule_name`: the names of its two arguments.
    - `is_rule`: whether an object is a valid rule (default: `callable`).
    """

    __slots__ = (
        "_table",
        "view",
        "what",
        "error",
        "is_key",
        "key_hint",
        "register_name",
        "key_name",
        "rule_name",
        "is_rule",
    )

    def __init__(
        self,
        what: str,
        *,
        error: type[SymmlError],
        is_key: Callable[[Any], bool],
        key_hint: str,
        register_name: str,
        key_name: str = "key",
        rule_name: str = "rule",
        is_rule: Callable[[Any], bool] = callable,
    ):
        self._table: dict[K, R] = {}
        self.view: Mapping[K, R] = MappingProxyType(self._table)
        self.what = what
        self.error = error
        self.is_key = is_key
        self.key_hint = key_hint
        self.register_name = register_name
        self.key_name = key_name
        self.rule_name = rule_name
        self.is_rule = is_rule

    def check_key(self, key: Any) -> None:
        if not self.is_key(key):
            raise self.error(
                f"`{self.key_name}` must be {self.key_hint}, got {key!r} (a "
                f"{type(key).__name__}); it is the first argument of "
                f"`{self.register_name}`."
            )

    def check_rule(self, key: Any, rule: Any) -> None:
        if not self.is_rule(rule):
            raise self.error(
                f"`{self.rule_name}` for `{_name(key)}` must be callable, got "
                f"{type(rule).__name__}; pass a function to `{self.register_name}`,"
                " or call it without one to get a decorator."
            )

    def register(self, key: K, rule: R | None = None):
        """Add or replace the rule for `key`; a decorator when `rule` is omitted."""
        self.check_key(key)
        if rule is None:
            return lambda r: self.register(key, r)
        self.check_rule(key, rule)
        self._table[key] = rule
        return rule

    def extended(self, extra: Mapping[K, R] | None) -> Mapping[K, R]:
        """The table with `extra` rules taking precedence, the table unchanged."""
        if not extra:
            return self.view
        if not isinstance(extra, Mapping):
            raise self.error(
                f"Extra {self.what}s must be a mapping {{key: rule}}, got "
                f"{type(extra).__name__}."
            )
        for key, rule in extra.items():
            self.check_key(key)
            self.check_rule(key, rule)
        return ChainMap(dict(extra), self._table)

    def get(self, key: K) -> R | None:
        return self._table.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._table


def _name(key: Any) -> str:
    return getattr(key, "name", None) or getattr(key, "__name__", None) or repr(key)
