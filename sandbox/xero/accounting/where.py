"""A small evaluator for Xero's `where` filter (the forms real clients send)."""

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<op>==|!=|>=|<=|>|<|&&|\|\|)
    | (?P<punct>[().,])
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


class WhereError(ValueError):
    """The filter could not be parsed."""


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise WhereError(f"cannot parse where clause near {text[pos : pos + 20]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self, value=None):
        token = self.peek()
        if token[0] is None or (value is not None and token[1] != value):
            raise WhereError(f"expected {value or 'more'} in where clause")
        self.pos += 1
        return token

    def parse(self):
        node = self.or_expr()
        if self.pos != len(self.tokens):
            raise WhereError("unexpected text at the end of the where clause")
        return node

    def or_expr(self):
        node = self.and_expr()
        while self.peek()[1] in ("||",) or (self.peek()[0] == "word" and self.peek()[1].upper() == "OR"):
            self.take()
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self):
        node = self.term()
        while self.peek()[1] == "&&" or (self.peek()[0] == "word" and self.peek()[1].upper() == "AND"):
            self.take()
            node = ("and", node, self.term())
        return node

    def term(self):
        if self.peek()[1] == "(":
            self.take("(")
            node = self.or_expr()
            self.take(")")
            return node
        if self.peek()[0] == "word" and self.peek()[1].upper() == "NOT":
            self.take()
            return ("not", self.term())
        path = [self.take()[1]]
        while self.peek()[1] == ".":
            self.take(".")
            name = self.take()
            if name[0] != "word":
                raise WhereError("expected a field or method name")
            if self.peek()[1] == "(":
                if name[1] in ("Contains", "StartsWith", "EndsWith"):
                    self.take("(")
                    arg = self.value()
                    self.take(")")
                    return ("method", name[1], path, arg)
                if name[1] in ("ToLower", "ToUpper"):
                    self.take("(")
                    self.take(")")
                    continue
                raise WhereError(f"unsupported method {name[1]}")
            path.append(name[1])
        kind, op = self.take()
        if kind != "op" or op in ("&&", "||"):
            raise WhereError("expected a comparison operator")
        return ("cmp", op, path, self.value())

    def value(self):
        kind, text = self.take()
        if kind == "string":
            return bytes(text[1:-1], "utf-8").decode("unicode_escape")
        if kind == "number":
            return Decimal(text)
        if kind == "word":
            lowered = text.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            if lowered == "null":
                return None
            if text in ("Guid", "DateTime", "DateTimeOffset"):
                self.take("(")
                args = [self.value()]
                while self.peek()[1] == ",":
                    self.take(",")
                    args.append(self.value())
                self.take(")")
                if text == "Guid":
                    return str(args[0]).lower()
                try:
                    if len(args) == 1 and isinstance(args[0], str):
                        return dt.date.fromisoformat(args[0][:10])
                    return dt.date(*[int(a) for a in args[:3]])
                except (ValueError, TypeError) as exc:
                    raise WhereError("bad DateTime") from exc
        raise WhereError(f"unexpected {text!r} in where clause")


def parse(text: str):
    """Parse a where clause into a small tree; WhereError when not understood."""
    return _Parser(text).parse()


def _lookup(view: dict, path: list[str]):
    current = view
    for name in path:
        if not isinstance(current, dict):
            return None
        match = next((k for k in current if k.lower() == name.lower()), None)
        if match is None:
            return None
        current = current[match]
    return current


def _coerce(left, right):
    if isinstance(right, Decimal) and left is not None and not isinstance(left, bool):
        try:
            return Decimal(str(left)), right
        except InvalidOperation:
            return left, right
    if isinstance(right, dt.date) and isinstance(left, str) and left:
        try:
            return dt.date.fromisoformat(left[:10]), right
        except ValueError:
            return left, right
    if isinstance(left, str) and isinstance(right, str):
        return left.lower(), right.lower()
    return left, right


def matches(tree, view: dict) -> bool:
    """Evaluate a parsed clause against a flat-ish record view."""
    head = tree[0]
    if head == "and":
        return matches(tree[1], view) and matches(tree[2], view)
    if head == "or":
        return matches(tree[1], view) or matches(tree[2], view)
    if head == "not":
        return not matches(tree[1], view)
    if head == "method":
        _, method, path, arg = tree
        value = _lookup(view, path)
        if not isinstance(value, str) or not isinstance(arg, str):
            return False
        value, arg = value.lower(), arg.lower()
        return {
            "Contains": arg in value,
            "StartsWith": value.startswith(arg),
            "EndsWith": value.endswith(arg),
        }[method]
    _, op, path, right = tree
    left, right = _coerce(_lookup(view, path), right)
    try:
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        if left is None or right is None:
            return False
        return {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[op]
    except TypeError:
        return False
