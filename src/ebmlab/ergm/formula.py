"""Parser for statnet-style ERGM formulas such as ``"edges + triangle + gwesp(0.5, fixed=TRUE)"``.

Grammar (whitespace is ignored)::

    formula  := [lhs '~'] term ('+' term)*
    term     := NAME ['(' [arg (',' arg)*] ')']
    arg      := [NAME '='] value
    value    := NUMBER | STRING | TRUE | FALSE | NAME

Strings may use single or double quotes. ``TRUE``/``FALSE`` (R spelling) and ``True``/``False``
become Python booleans. A left-hand side before ``~`` (R's ``flomarriage ~ edges``) is ignored.
Parse errors raise :class:`~ebmlab.ConfigError` with the formula and a caret under the position.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from .._core.errors import ConfigError

__all__ = ["TermSpec", "parse_formula"]


@dataclass(frozen=True)
class TermSpec:
    """One parsed term: its name, positional and keyword arguments and its position in the formula."""

    name: str
    args: Tuple[Any, ...] = ()
    kwargs: Dict[str, Any] = field(default_factory=dict)
    position: int = 0


def _error(text: str, pos: int, what: str) -> ConfigError:
    return ConfigError(f"cannot parse ERGM formula at position {pos}: {what}\n  {text}\n  {' ' * pos}^")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    # -- lexing helpers -------------------------------------------------------------------------
    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self) -> str:
        self._skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _expect(self, ch: str) -> None:
        if self._peek() != ch:
            got = repr(self.text[self.pos]) if self.pos < len(self.text) else "end of formula"
            raise _error(self.text, self.pos, f"expected {ch!r}, got {got}")
        self.pos += 1

    def _name(self) -> Tuple[str, int]:
        self._skip()
        start = self.pos
        if self.pos < len(self.text) and (self.text[self.pos].isalpha() or self.text[self.pos] == "_"):
            self.pos += 1
            while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] in "_."):
                self.pos += 1
            return self.text[start:self.pos], start
        got = repr(self.text[self.pos]) if self.pos < len(self.text) else "end of formula"
        raise _error(self.text, start, f"expected a term name, got {got}")

    def _value(self) -> Any:
        self._skip()
        start = self.pos
        ch = self._peek()
        if ch in ("'", '"'):
            end = self.text.find(ch, self.pos + 1)
            if end < 0:
                raise _error(self.text, start, "unterminated string")
            self.pos = end + 1
            return self.text[start + 1:end]
        if ch and (ch.isdigit() or ch in "+-."):
            self.pos += 1
            while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] in ".+-"):
                # allow exponents like 1e-3 but stop at a '+'/'-' that is not part of one
                if self.text[self.pos] in "+-" and self.text[self.pos - 1] not in "eE":
                    break
                self.pos += 1
            token = self.text[start:self.pos]
            try:
                number = float(token)
            except ValueError:
                raise _error(self.text, start, f"bad number {token!r}") from None
            return int(number) if number.is_integer() and not any(c in token for c in ".eE") else number
        if ch and (ch.isalpha() or ch == "_"):
            word, _ = self._name()
            if word in ("TRUE", "True", "T"):
                return True
            if word in ("FALSE", "False", "F"):
                return False
            return word
        got = repr(ch) if ch else "end of formula"
        raise _error(self.text, start, f"expected a value (number, quoted string, TRUE/FALSE), got {got}")

    # -- grammar ----------------------------------------------------------------------------------
    def _term(self) -> TermSpec:
        name, start = self._name()
        args: List[Any] = []
        kwargs: Dict[str, Any] = {}
        if self._peek() == "(":
            self.pos += 1
            if self._peek() == ")":
                self.pos += 1
            else:
                while True:
                    self._skip()
                    save = self.pos
                    key = None
                    if self._peek().isalpha():
                        word, _ = self._name()
                        if self._peek() == "=":
                            self.pos += 1
                            key = word
                        else:
                            self.pos = save
                    value = self._value()
                    if key is None:
                        if kwargs:
                            raise _error(self.text, save, "positional argument after a keyword argument")
                        args.append(value)
                    else:
                        if key in kwargs:
                            raise _error(self.text, save, f"argument {key!r} given twice")
                        kwargs[key] = value
                    if self._peek() == ",":
                        self.pos += 1
                        continue
                    self._expect(")")
                    break
        return TermSpec(name=name, args=tuple(args), kwargs=kwargs, position=start)

    def parse(self) -> List[TermSpec]:
        tilde = self.text.find("~")
        if tilde >= 0:
            self.pos = tilde + 1
        if not self._peek():
            raise _error(self.text, self.pos, "the formula has no terms")
        terms = [self._term()]
        while self._peek() == "+":
            self.pos += 1
            terms.append(self._term())
        if self._peek():
            raise _error(self.text, self.pos, f"expected '+' or end of formula, got {self.text[self.pos]!r}")
        return terms


def parse_formula(formula: str) -> List[TermSpec]:
    """Parse a statnet-style formula into a list of :class:`TermSpec`.

    Parameters
    ----------
    formula : str
        For example ``"edges + kstar(2) + nodematch('group') + gwesp(decay=0.5, fixed=TRUE)"``.

    Returns
    -------
    list of TermSpec
        In formula order.

    Raises
    ------
    ConfigError
        If the text does not follow the grammar; the message shows the position with a caret.
    """
    if not isinstance(formula, str):
        raise ConfigError(f"an ERGM formula must be a string such as 'edges + triangle', got {formula!r}")
    return _Parser(formula).parse()
