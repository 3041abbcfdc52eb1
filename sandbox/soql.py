"""A recursive-descent parser and evaluator for the SOQL subset the connectors use.

A real parser (rather than regexes) is what lets the sandbox reject bad queries the way
Salesforce does: syntax errors come back as ``MALFORMED_QUERY`` with Salesforce's caret-and-
position message, unknown objects as ``INVALID_TYPE``, unknown fields and mistyped filter values
as ``INVALID_FIELD``.  Supported::

    SELECT field, Rel.field, COUNT(), COUNT(field) FROM Object
    [WHERE cond]  cond := cond AND cond | cond OR cond | NOT cond | (cond)
                  field (= | != | <> | < | <= | > | >=) value
                  field [NOT] IN (value, ...) | field LIKE 'pat%'
    [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]

Values: 'strings', numbers, true/false/null, 2024-01-31, 2024-01-31T10:00:00Z (any offset),
TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n, N_DAYS_AGO:n.  As in Salesforce,
AND and OR cannot be mixed at one level without parentheses, string comparison is
case-insensitive, and ``!=`` / ``NOT IN`` match null values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from .clock import day_start_ms, ms_to_dt, parse_date, parse_datetime_ms, sf_datetime, wall_ms
from .ids import to_sf18
from .schema import NUMBER_TYPES, STRING_TYPES, SfField, SfObject

# --- errors ---------------------------------------------------------------------------------


class SoqlError(Exception):
    """A query Salesforce would refuse; ``code`` is the REST ``errorCode``."""

    def __init__(self, code: str, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = message
        self.pos = pos

    def render(self, query: str) -> str:
        """Salesforce's message shape: the query line, a caret, the row/column, the reason."""
        if self.pos is None:
            return self.detail
        before = query[: self.pos]
        row = before.count("\n") + 1
        line_start = before.rfind("\n") + 1
        col = self.pos - line_start + 1
        line_end = query.find("\n", self.pos)
        line = query[line_start : line_end if line_end >= 0 else len(query)]
        return f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{self.detail}"


def _malformed(message: str, pos: int | None) -> SoqlError:
    return SoqlError("MALFORMED_QUERY", message, pos)


# --- lexer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # IDENT STRING NUMBER DATE DATETIME OP LPAREN RPAREN COMMA DOT COLON EOF
    text: str
    pos: int
    value: Any = None

    def is_kw(self, *words: str) -> bool:
        return self.kind == "IDENT" and self.text.upper() in words


_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\w:])")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f",
            "_": "\\_", "%": "\\%"}
_OPS = ("!=", "<>", "<=", ">=", "=", "<", ">")


def tokenize(query: str) -> list[Token]:
    """Split a query into tokens; lexical errors carry Salesforce's 'line 1:N ...' wording."""
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            start, i, buf = i, i + 1, []
            while True:
                if i >= n:
                    raise _malformed(f"line 1:{start} mismatched character '<EOF>' expecting '''", start)
                c = query[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise _malformed(f"line 1:{start} mismatched character '<EOF>' expecting '''", start)
                    esc = query[i + 1]
                    if esc not in _ESCAPES:
                        raise _malformed(
                            f"Invalid string literal '{query[start + 1 : i + 2]}'. Illegal character "
                            f"sequence '\\{esc}' in string literal.",
                            start,
                        )
                    buf.append(_ESCAPES[esc])
                    i += 2
                    continue
                if c == "'":
                    i += 1
                    break
                buf.append(c)
                i += 1
            tokens.append(Token("STRING", query[start:i], start, "".join(buf)))
            continue
        if ch.isdigit() or (ch == "-" and i + 1 < n and query[i + 1].isdigit()):
            m = _DATETIME_RE.match(query, i)
            if m and ch != "-":
                text = m.group(0)
                if not re.search(r"(Z|[+-]\d{2}:?\d{2})$", text):
                    raise _malformed(f"line 1:{i} no viable alternative at character '{query[m.end() - 1]}'"
                                     f" (a datetime literal needs Z or an offset such as +00:00)", i)
                ms = parse_datetime_ms(text, require_zone=True)
                if ms is None:
                    raise _malformed(f"line 1:{i} Invalid datetime literal: {text}", i)
                tokens.append(Token("DATETIME", text, i, ms))
                i = m.end()
                continue
            m = _DATE_RE.match(query, i)
            if m and ch != "-":
                text = m.group(0)
                d = parse_date(text)
                if d is None:
                    raise _malformed(f"line 1:{i} Invalid date literal: {text}", i)
                tokens.append(Token("DATE", text, i, d))
                i = m.end()
                continue
            m = _NUMBER_RE.match(query, i)
            assert m is not None
            text = m.group(0)
            if m.end() < n and (query[m.end()].isalpha() or query[m.end()] == "_"):
                raise _malformed(f"line 1:{m.end()} no viable alternative at character '{query[m.end()]}'",
                                 m.end())
            tokens.append(Token("NUMBER", text, i, float(text) if "." in text else int(text)))
            i = m.end()
            continue
        if ch.isalpha() or ch == "_":
            m = _IDENT_RE.match(query, i)
            assert m is not None
            tokens.append(Token("IDENT", m.group(0), i))
            i = m.end()
            continue
        for op in _OPS:
            if query.startswith(op, i):
                tokens.append(Token("OP", op, i))
                i += len(op)
                break
        else:
            kinds = {"(": "LPAREN", ")": "RPAREN", ",": "COMMA", ".": "DOT", ":": "COLON"}
            if ch in kinds:
                tokens.append(Token(kinds[ch], ch, i))
                i += 1
            else:
                raise _malformed(f"line 1:{i} no viable alternative at character '{ch}'", i)
    tokens.append(Token("EOF", "<EOF>", n))
    return tokens


# --- AST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRef:
    path: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class CountItem:
    field: FieldRef | None
    pos: int


@dataclass(frozen=True)
class Literal:
    kind: str  # string number boolean null date datetime dateliteral
    value: Any
    text: str
    pos: int


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    op: str  # = != < <= > >= LIKE IN NOT IN
    value: Literal | tuple[Literal, ...]
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND OR
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class OrderItem:
    field: FieldRef
    descending: bool
    nulls_first: bool


@dataclass
class Query:
    select: list[FieldRef | CountItem]
    sobject: str
    sobject_pos: int
    where: Any = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


_RESERVED = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT", "OFFSET",
             "ASC", "DESC", "NULLS", "NULL", "TRUE", "FALSE", "GROUP", "HAVING"}
_DATE_LITERALS = {"TODAY", "YESTERDAY", "TOMORROW"}
_DATE_LITERALS_N = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"}


class Parser:
    """Recursive descent over the token list; every error points at the offending token."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    # helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def unexpected(self, t: Token | None = None) -> SoqlError:
        t = t or self.tok
        shown = "<EOF>" if t.kind == "EOF" else f"'{t.text}'"
        return _malformed(f"unexpected token: {shown}", t.pos)

    def expect_kw(self, word: str) -> Token:
        if not self.tok.is_kw(word):
            raise self.unexpected()
        return self.advance()

    def expect(self, kind: str) -> Token:
        if self.tok.kind != kind:
            raise self.unexpected()
        return self.advance()

    # grammar
    def parse(self) -> Query:
        if self.tok.kind == "EOF":
            raise _malformed("unexpected token: <EOF>", self.tok.pos)
        self.expect_kw("SELECT")
        select = self.select_list()
        self.expect_kw("FROM")
        obj = self.tok
        # GROUP is a keyword only after WHERE; after FROM it names the Group sObject (queues), as Salesforce allows
        if obj.kind != "IDENT" or (obj.text.upper() in _RESERVED and obj.text.upper() != "GROUP"):
            raise self.unexpected()
        self.advance()
        q = Query(select=select, sobject=obj.text, sobject_pos=obj.pos)
        if self.tok.is_kw("WHERE"):
            self.advance()
            q.where = self.condition()
        if self.tok.is_kw("GROUP", "HAVING"):
            raise _malformed(f"{self.tok.text.upper()} is not supported by the leadroute sandbox", self.tok.pos)
        if self.tok.is_kw("ORDER"):
            self.advance()
            self.expect_kw("BY")
            q.order = self.order_list()
        if self.tok.is_kw("LIMIT"):
            self.advance()
            q.limit = self.non_negative_int()
        if self.tok.is_kw("OFFSET"):
            self.advance()
            q.offset = self.non_negative_int()
            if q.offset > 2000:
                raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000", None)
        if self.tok.kind != "EOF":
            raise self.unexpected()
        return q

    def non_negative_int(self) -> int:
        t = self.tok
        if t.kind != "NUMBER" or not isinstance(t.value, int) or t.value < 0:
            raise self.unexpected()
        self.advance()
        return int(t.value)

    def select_list(self) -> list[FieldRef | CountItem]:
        items: list[FieldRef | CountItem] = [self.select_item()]
        while self.tok.kind == "COMMA":
            self.advance()
            items.append(self.select_item())
        return items

    def select_item(self) -> FieldRef | CountItem:
        t = self.tok
        if t.is_kw("COUNT") and self.tokens[self.i + 1].kind == "LPAREN":
            self.advance()
            self.advance()
            inner = None if self.tok.kind == "RPAREN" else self.field_ref()
            self.expect("RPAREN")
            return CountItem(inner, t.pos)
        if t.kind == "LPAREN":
            raise _malformed("semi-join and sub-select queries are not supported by the leadroute sandbox",
                             t.pos)
        return self.field_ref()

    def field_ref(self) -> FieldRef:
        t = self.tok
        if t.kind != "IDENT" or t.text.upper() in _RESERVED:
            raise self.unexpected()
        self.advance()
        parts = [t.text]
        while self.tok.kind == "DOT":
            self.advance()
            nxt = self.tok
            if nxt.kind != "IDENT":
                raise self.unexpected()
            self.advance()
            parts.append(nxt.text)
        return FieldRef(tuple(parts), t.pos)

    def condition(self) -> Any:
        first = self.unary()
        if self.tok.is_kw("AND", "OR"):
            op = self.tok.text.upper()
            items = [first]
            while self.tok.is_kw(op):
                self.advance()
                items.append(self.unary())
            if self.tok.is_kw("AND", "OR"):  # mixing AND and OR needs parentheses in SOQL
                raise self.unexpected()
            return BoolOp(op, tuple(items))
        return first

    def unary(self) -> Any:
        if self.tok.is_kw("NOT"):
            self.advance()
            return Not(self.unary())
        if self.tok.kind == "LPAREN":
            self.advance()
            inner = self.condition()
            self.expect("RPAREN")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        f = self.field_ref()
        t = self.tok
        if t.kind == "OP":
            self.advance()
            op = "!=" if t.text == "<>" else t.text
            return Comparison(f, op, self.value(), t.pos)
        if t.is_kw("LIKE"):
            self.advance()
            return Comparison(f, "LIKE", self.value(), t.pos)
        if t.is_kw("IN"):
            self.advance()
            return Comparison(f, "IN", self.value_list(), t.pos)
        if t.is_kw("NOT") and self.tokens[self.i + 1].is_kw("IN"):
            self.advance()
            self.advance()
            return Comparison(f, "NOT IN", self.value_list(), t.pos)
        raise self.unexpected()

    def order_list(self) -> list[OrderItem]:
        items = [self.order_item()]
        while self.tok.kind == "COMMA":
            self.advance()
            items.append(self.order_item())
        return items

    def order_item(self) -> OrderItem:
        f = self.field_ref()
        desc = False
        if self.tok.is_kw("ASC"):
            self.advance()
        elif self.tok.is_kw("DESC"):
            self.advance()
            desc = True
        nulls_first = not desc
        if self.tok.is_kw("NULLS"):
            self.advance()
            if self.tok.is_kw("FIRST"):
                nulls_first = True
            elif self.tok.is_kw("LAST"):
                nulls_first = False
            else:
                raise self.unexpected()
            self.advance()
        return OrderItem(f, desc, nulls_first)

    def value_list(self) -> tuple[Literal, ...]:
        self.expect("LPAREN")
        if self.tok.is_kw("SELECT"):
            raise _malformed("semi-join sub-selects are not supported by the leadroute sandbox", self.tok.pos)
        values = [self.value()]
        while self.tok.kind == "COMMA":
            self.advance()
            values.append(self.value())
        self.expect("RPAREN")
        return tuple(values)

    def value(self) -> Literal:
        t = self.tok
        if t.kind == "STRING":
            self.advance()
            return Literal("string", t.value, t.text, t.pos)
        if t.kind == "NUMBER":
            self.advance()
            return Literal("number", t.value, t.text, t.pos)
        if t.kind == "DATE":
            self.advance()
            return Literal("date", t.value, t.text, t.pos)
        if t.kind == "DATETIME":
            self.advance()
            return Literal("datetime", t.value, t.text, t.pos)
        if t.kind == "COLON":
            raise _malformed("Bind variables only allowed in Apex code", t.pos)
        if t.kind == "IDENT":
            word = t.text.upper()
            if word in ("TRUE", "FALSE"):
                self.advance()
                return Literal("boolean", word == "TRUE", t.text, t.pos)
            if word == "NULL":
                self.advance()
                return Literal("null", None, t.text, t.pos)
            if word in _DATE_LITERALS:
                self.advance()
                return Literal("dateliteral", (word, 0), t.text, t.pos)
            if word in _DATE_LITERALS_N:
                self.advance()
                if self.tok.kind != "COLON":
                    raise _malformed(f"Invalid date literal: {t.text} needs a day count, e.g. {word}:7", t.pos)
                self.advance()
                num = self.tok
                if num.kind != "NUMBER" or not isinstance(num.value, int) or num.value < 0:
                    raise self.unexpected()
                self.advance()
                return Literal("dateliteral", (word, int(num.value)), f"{t.text}:{num.text}", t.pos)
        raise self.unexpected()


def parse(query: str) -> Query:
    """Parse SOQL text into an AST (syntax only; names are checked by :func:`compile_query`)."""
    return Parser(query).parse()


# --- binding and evaluation -----------------------------------------------------------------


class Catalog(Protocol):
    """What the evaluator needs from the store: object schemas and id lookups."""

    def sobject(self, name: str) -> SfObject | None: ...

    def lookup(self, record_id: str) -> tuple[str, dict[str, Any]] | None: ...


Getter = Callable[[dict[str, Any]], Any]


@dataclass
class Column:
    """One selected path, bound to the schema."""

    path: tuple[str, ...]  # canonical names; relationship names for all but the last
    fields: tuple[SfField, ...]  # the reference field for each hop, then the leaf field
    getter: Getter


@dataclass
class CompiledQuery:
    sobject: str
    columns: list[Column]
    predicate: Callable[[dict[str, Any]], bool]
    order: list[tuple[Getter, bool, bool, SfField]]
    limit: int | None
    offset: int | None
    count_only: bool
    aggregate: bool
    id_filter: tuple[str, ...] | None = None  # ids the WHERE clause restricts to (an index lookup)


_TYPE_WORD = {"int": "integer", "double": "double", "currency": "double", "percent": "double",
              "boolean": "boolean", "date": "date", "datetime": "dateTime"}


def _no_such_column(name: str, entity: str, pos: int) -> SoqlError:
    return SoqlError(
        "INVALID_FIELD",
        f"No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be "
        "sure to append the '__c' after the custom field name. Please reference your WSDL or the describe "
        "call for the appropriate names.",
        pos,
    )


def _bind_path(catalog: Catalog, obj: SfObject, ref: FieldRef) -> Column:
    """Resolve ``Rel.Rel.Field`` against the schema and build a fast getter for it."""
    current: list[SfObject] = [obj]
    names: list[str] = []
    hops: list[SfField] = []
    for hop in ref.path[:-1]:
        rel_field = None
        for o in current:
            rel_field = o.relationships.get(hop.lower())
            if rel_field:
                break
        if rel_field is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"Didn't understand relationship '{hop}' in field path. If you are attempting to use a custom "
                "relationship, be sure to append the '__r' after the custom relationship name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
                ref.pos,
            )
        names.append(rel_field.relationship or hop)
        hops.append(rel_field)
        targets = [catalog.sobject(t) for t in rel_field.reference_to]
        current = [t for t in targets if t is not None]
    leaf_name = ref.path[-1]
    if hops and len(hops[-1].reference_to) > 1 and leaf_name.lower() == "type":
        return _name_type(catalog, tuple(names), tuple(hops))
    leaf: SfField | None = None
    per_type: dict[str, str] = {}
    for o in current:
        f = o.field_named(leaf_name)
        if f:
            leaf = leaf or f
            per_type[o.name] = f.name
    if leaf is None:
        raise _no_such_column(leaf_name, current[0].name if current else obj.name, ref.pos)
    names.append(leaf.name)

    if not hops:
        key = leaf.name

        def getter(rec: dict[str, Any]) -> Any:
            return rec.get(key)
    else:
        hop_names = [h.name for h in hops]

        def getter(rec: dict[str, Any]) -> Any:
            found = _follow(catalog, hop_names, rec)
            if found is None:
                return None
            typ, target = found
            return target.get(per_type.get(typ, ""))

    return Column(tuple(names), (*hops, leaf), getter)


def _name_type(catalog: Catalog, names: tuple[str, ...], hops: tuple[SfField, ...]) -> Column:
    """``Owner.Type`` through a polymorphic relationship: Salesforce resolves it on the ``Name`` object, whose
    ``Type`` is the kind of record referenced (``User``, or ``Queue`` for a queue), not on the target itself."""
    hop_names = [h.name for h in hops]

    def getter(rec: dict[str, Any]) -> Any:
        found = _follow(catalog, hop_names, rec)
        if found is None:
            return None
        typ, target = found
        return target.get("Type") if typ == "Group" else typ

    return Column((*names, "Type"), (*hops, SfField("Type", "picklist", length=40)), getter)


def _follow(catalog: Catalog, hop_names: list[str], rec: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The record at the end of a relationship path (with its type), or None where a reference is empty or dangling."""
    typ, target = "", rec
    for hn in hop_names:
        ref_id = target.get(hn)
        found = catalog.lookup(ref_id) if ref_id else None
        if found is None:
            return None
        typ, target = found
    return typ, target


def _check_literal(f: SfField, lit: Literal, op: str) -> None:
    """Salesforce refuses filter values of the wrong type with INVALID_FIELD."""
    t = f.type
    kind = lit.kind
    if kind == "null":
        if op not in ("=", "!=", "IN", "NOT IN"):
            raise SoqlError("INVALID_FIELD", f"invalid operator on null value for field '{f.name}'", lit.pos)
        return
    if t in STRING_TYPES:
        if kind != "string":
            raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{f.name}' must be of type "
                            "string and should be enclosed in quotes", lit.pos)
        return
    ok = (
        (t in NUMBER_TYPES and kind == "number")
        or (t == "boolean" and kind == "boolean")
        or (t == "date" and kind in ("date", "dateliteral"))
        or (t == "datetime" and kind in ("datetime", "dateliteral"))
    )
    if not ok:
        raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{f.name}' must be of type "
                        f"{_TYPE_WORD.get(t, t)} and should not be enclosed in quotes", lit.pos)


def _date_range(lit: Literal, today: date) -> tuple[date, date]:
    """[start, end) in days for a named date literal, in UTC (the org time zone here)."""
    word, n = lit.value
    if word == "TODAY":
        return today, today + timedelta(days=1)
    if word == "YESTERDAY":
        return today - timedelta(days=1), today
    if word == "TOMORROW":
        return today + timedelta(days=1), today + timedelta(days=2)
    if word == "LAST_N_DAYS":
        return today - timedelta(days=n), today + timedelta(days=1)
    if word == "NEXT_N_DAYS":
        return today + timedelta(days=1), today + timedelta(days=n + 1)
    # N_DAYS_AGO
    d = today - timedelta(days=n)
    return d, d + timedelta(days=1)


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _norm_value(f: SfField, lit: Literal) -> Any:
    """The literal converted to the stored representation of the field."""
    if lit.kind == "null":
        return None
    if f.type in ("id", "reference"):
        return to_sf18(str(lit.value))
    if f.type in STRING_TYPES:
        return str(lit.value).lower()
    if f.type == "date":
        return lit.value.isoformat()
    return lit.value


def _compile_cmp(cmp: Comparison, col: Column) -> Callable[[dict[str, Any]], bool]:
    f = col.fields[-1]
    get = col.getter
    op = cmp.op
    lits = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    if op == "LIKE" and (f.type not in STRING_TYPES or f.type in ("id", "reference")):
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR",
                        f"invalid operator on field '{f.name}': LIKE needs a text field", cmp.pos)
    for lit in lits:
        _check_literal(f, lit, op)
        if lit.kind == "dateliteral" and op in ("IN", "NOT IN"):
            raise SoqlError("INVALID_FIELD", "date literals are not supported inside IN lists by the sandbox",
                            lit.pos)
    is_text = f.type in STRING_TYPES and f.type not in ("id", "reference")
    fold = (lambda v: v.lower() if isinstance(v, str) else v) if is_text else (lambda v: v)

    if op == "LIKE":
        if not is_text:
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR",
                            f"invalid operator on field '{f.name}': LIKE needs a text field", cmp.pos)
        lit = lits[0]
        if lit.kind != "string":
            raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{f.name}' must be of type "
                            "string and should be enclosed in quotes", lit.pos)
        rx = _like_regex(str(lit.value))
        return lambda r: (v := get(r)) is not None and rx.fullmatch(v) is not None

    if op in ("IN", "NOT IN"):
        values = {_norm_value(f, lit) for lit in lits}
        if op == "IN":
            return lambda r: fold(get(r)) in values
        return lambda r: fold(get(r)) not in values

    lit = lits[0]
    if f.type == "boolean" and op not in ("=", "!="):
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on boolean field '{f.name}'", cmp.pos)

    if lit.kind == "null":
        if op == "=":
            return lambda r: get(r) is None
        return lambda r: get(r) is not None

    if lit.kind == "dateliteral":
        start_d, end_d = _date_range(lit, ms_to_dt(wall_ms()).date())
        if f.type == "date":
            lo, hi = start_d.isoformat(), end_d.isoformat()
        else:
            lo, hi = day_start_ms(start_d), day_start_ms(end_d)  # type: ignore[assignment]
        ranges: dict[str, Callable[[Any], bool]] = {
            "=": lambda v: lo <= v < hi,
            "!=": lambda v: not (lo <= v < hi),
            "<": lambda v: v < lo,
            "<=": lambda v: v < hi,
            ">": lambda v: v >= hi,
            ">=": lambda v: v >= lo,
        }
        test = ranges[op]
        if op == "!=":
            return lambda r: (v := get(r)) is None or test(v)
        return lambda r: (v := get(r)) is not None and test(v)

    target = _norm_value(f, lit)
    if op == "=":
        return lambda r: fold(get(r)) == target
    if op == "!=":
        return lambda r: fold(get(r)) != target
    cmp_fn: Callable[[Any, Any], bool] = {
        "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    }[op]
    return lambda r: (v := get(r)) is not None and cmp_fn(fold(v), target)


def _compile_expr(node: Any, catalog: Catalog, obj: SfObject) -> Callable[[dict[str, Any]], bool]:
    if isinstance(node, Comparison):
        return _compile_cmp(node, _bind_path(catalog, obj, node.field))
    if isinstance(node, Not):
        inner = _compile_expr(node.item, catalog, obj)
        return lambda r: not inner(r)
    parts = [_compile_expr(i, catalog, obj) for i in node.items]
    if node.op == "AND":
        return lambda r: all(p(r) for p in parts)
    return lambda r: any(p(r) for p in parts)


def compile_query(query: str, catalog: Catalog) -> CompiledQuery:
    """Parse and bind a query; raises :class:`SoqlError` exactly where Salesforce would."""
    ast = parse(query)
    obj = catalog.sobject(ast.sobject)
    if obj is None:
        raise SoqlError(
            "INVALID_TYPE",
            f"sObject type '{ast.sobject}' is not supported. If you are attempting to use a custom object, be "
            "sure to append the '__c' after the entity name. Please reference your WSDL or the describe call "
            "for the appropriate names.",
            ast.sobject_pos,
        )
    counts = [s for s in ast.select if isinstance(s, CountItem)]
    plain = [s for s in ast.select if isinstance(s, FieldRef)]
    count_only = False
    aggregate = False
    columns: list[Column] = []
    if counts:
        if len(ast.select) > 1:
            raise _malformed("COUNT() cannot be combined with other fields without GROUP BY", counts[0].pos)
        if counts[0].field is None:
            count_only = True
        else:
            aggregate = True
            columns.append(_bind_path(catalog, obj, counts[0].field))
    seen: set[tuple[str, ...]] = set()
    for ref in plain:
        col = _bind_path(catalog, obj, ref)
        key = tuple(p.lower() for p in col.path)
        if key in seen:
            raise SoqlError("DUPLICATE_FIELD", f"duplicate field selected: {'.'.join(col.path)}", ref.pos)
        seen.add(key)
        columns.append(col)
    predicate = _compile_expr(ast.where, catalog, obj) if ast.where is not None else (lambda r: True)
    order = []
    for item in ast.order:
        col = _bind_path(catalog, obj, item.field)
        order.append((col.getter, item.descending, item.nulls_first, col.fields[-1]))
    return CompiledQuery(obj.name, columns, predicate, order, ast.limit, ast.offset, count_only, aggregate,
                         _id_filter(ast.where))


def _id_filter(where: Any) -> tuple[str, ...] | None:
    """``Id = 'x'`` / ``Id IN (...)`` at the top level (or inside a top-level AND) narrows the scan."""
    items = where.items if isinstance(where, BoolOp) and where.op == "AND" else (where,)
    for node in items:
        if isinstance(node, Comparison) and len(node.field.path) == 1 and node.field.path[0].lower() == "id":
            lits = node.value if isinstance(node.value, tuple) else (node.value,)
            if node.op in ("=", "IN") and all(lit.kind == "string" for lit in lits):
                return tuple(dict.fromkeys(to_sf18(str(lit.value)) for lit in lits))
    return None


def sort_records(rows: list[dict[str, Any]], order: list[tuple[Getter, bool, bool, SfField]]) -> list[dict[str, Any]]:
    """Stable multi-key sort with SOQL's null placement and case-insensitive text ordering."""
    for getter, desc, nulls_first, f in reversed(order):
        text = f.type in STRING_TYPES
        nulls = [r for r in rows if getter(r) is None]
        rest = [r for r in rows if getter(r) is not None]
        if text:
            rest.sort(key=lambda r, g=getter: g(r).lower(), reverse=desc)  # type: ignore[misc]
        else:
            rest.sort(key=getter, reverse=desc)
        rows = nulls + rest if nulls_first else rest + nulls
    return rows


def format_value(f: SfField, value: Any) -> Any:
    """Stored value -> REST JSON value."""
    if value is None:
        return None
    if f.type == "datetime":
        return sf_datetime(int(value))
    return value
