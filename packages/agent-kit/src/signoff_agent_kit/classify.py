"""What a tool does: categories from its name, its docstring and, most reliably, its calls.

`name_categories` and `docstring_categories` read words; `call_evidence` reads one call
(payment SDKs, cloud deletes, SQL text, shell command lines, HTTP writes, senders);
`Classifier.function` collects the evidence of a function body and of the project functions it
calls, transitively, cached per function. The rule tables live in `rules.py`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace

from signoff_agent_kit.call_rules import (
    CALL_RULES,
    FIELD_WRITES,
    HTTP_HINTS,
    HTTP_READ_URL,
    HTTP_RECEIVER,
    HTTP_ROOTS,
    INTERPRETERS,
    KUBERNETES_TAIL,
    QUEUE_RECEIVER,
    SHELL_CALLS,
    SHELL_HINTS,
    SQL_RULES,
    SQL_TAILS,
    CallRule,
)
from signoff_agent_kit.detect.module import Function, Module, Project
from signoff_agent_kit.model import Category, Confidence, Evidence
from signoff_agent_kit.rules import (
    NAME_RULES,
    NOUN_VETO,
    READ_VERBS,
    STRIP_TOKENS,
)

__all__ = [
    "Classifier",
    "call_evidence",
    "docstring_categories",
    "is_read_only_name",
    "name_categories",
    "strip_calls",
    "tokens",
]

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_PARENS = re.compile(r"\([^()]*\)")
_NEGATION = re.compile(r"\b(not|never|without|read-only|readonly|dry[- ]run|no side effects)\b")
_ALL_VERBS = frozenset(
    {v for r in NAME_RULES for verbs, _ in r.pairs for v in verbs}
    | {v for r in NAME_RULES for v in r.alone | r.any_object}
    | READ_VERBS
)
_STOP = frozenset(
    ("a", "an", "the", "to", "of", "for", "from", "in", "on", "at", "by", "with", "and", "or",
     "its", "it", "their", "your", "our", "this", "that", "all", "every", "any", "some", "each",
     "one")
)  # fmt: skip
_BY_TAIL: dict[str, list[CallRule]] = {}
for _rule in CALL_RULES:
    for _tail in _rule.tails:
        _BY_TAIL.setdefault(_tail, []).append(_rule)


def tokens(name: str) -> list[str]:
    """`ReleasePayment_tool` → `["release", "payment", "tool"]`."""
    return [t.lower() for t in _SPLIT.split(_CAMEL.sub(" ", name)) if t]


def strip_calls(dotted: str) -> str:
    """`boto3.client(s3).delete_object` → `boto3.client.delete_object`."""
    dotted = dotted.replace("[]", "")
    while "(" in dotted:
        stripped = _PARENS.sub("", dotted)
        if stripped == dotted:
            break
        dotted = stripped
    return dotted


def _core(words: list[str]) -> list[str]:
    while words and words[0] in STRIP_TOKENS:
        words = words[1:]
    while words and words[-1] in STRIP_TOKENS:
        words = words[:-1]
    return words


def _verb_and_objects(words: list[str]) -> tuple[str, list[str]] | None:
    words = _core(words)
    if not words:
        return None
    verb, objects = words[0], words[1:]
    if verb not in _ALL_VERBS and len(words) > 1 and words[-1] in _ALL_VERBS:
        verb, objects = words[-1], words[:-1]  # `payments.release`, `user_delete`
    return verb, objects


def is_read_only_name(name: str) -> bool:
    """The name starts with a read-only verb (`get_payment_status`, `draft_reply`)."""
    found = _verb_and_objects(tokens(name))
    return found is not None and found[0] in READ_VERBS


def _categories(words: list[str], *, alone: bool) -> list[tuple[Category, str]]:
    found = _verb_and_objects(words)
    if found is None or found[0] in READ_VERBS:
        return []
    verb, objects = found
    objset = set(objects)
    out: list[tuple[Category, str]] = []
    for rule in NAME_RULES:
        why = ""
        for verbs, nouns in rule.pairs:
            hits = objset & nouns
            if verb in verbs and hits:
                why = f"{verb} + {sorted(hits)[0]}"
                break
        if not why and verb in rule.any_object and objects and not objset & rule.exclude:
            why = f"{verb} + {objects[0]}"
        if not why and alone and verb in rule.alone and not objset & (NOUN_VETO | rule.exclude):
            why = verb
        if why:
            out.append((rule.category, why))
    return out


def name_categories(name: str, *, alone: bool = True) -> list[tuple[Category, str]]:
    """Categories a name puts a tool in, with the words that did it.

    `alone=False` (used for called methods) ignores lone verbs: `items.remove(x)` is not a
    deletion, `repo.delete_records()` is.
    """
    return _categories(tokens(name), alone=alone)


def _normal_verb(word: str) -> str:
    for cand in (word, word[:-1], word[:-2], word[:-3] + "y" if word.endswith("ies") else ""):
        if cand and cand in _ALL_VERBS:
            return cand
    return word


def docstring_categories(doc: str) -> list[tuple[Category, str]]:
    """Categories from the first sentence of a docstring, read as an imperative."""
    sentence = re.split(r"\.\s|\n\s*\n", doc.strip(), maxsplit=1)[0].lower()
    if not sentence or _NEGATION.search(sentence):
        return []
    words = [w for w in re.findall(r"[a-z][a-z0-9]*", sentence)[:16] if w not in _STOP]
    if not words:
        return []
    return _categories([_normal_verb(words[0]), *words[1:]], alone=True)


# -- calls ------------------------------------------------------------------------------------


def _ev(
    module: Module, call: ast.Call, cat: Category, reason: str, source: str, conf: Confidence
) -> Evidence:
    return Evidence(cat, reason, module.rel, call.lineno, source, conf, module.snippet(call.lineno))


def _arg(call: ast.Call, index: int, *names: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg in names:
            return kw.value
    return call.args[index] if len(call.args) > index else None


def _command(module: Module, fn: Function | None, expr: ast.expr | None) -> tuple[str, bool]:
    """The command line as text (holes as `{}`) and whether it is an argv list."""
    if isinstance(expr, ast.Name):
        value = (fn.assigns.get(expr.id) if fn else None) or module.assigns.get(expr.id)
        if isinstance(value, ast.List | ast.Tuple):
            expr = value
    if isinstance(expr, ast.List | ast.Tuple):
        return " ".join(module.string_value(e, fn) or "{}" for e in expr.elts), True
    return module.string_value(expr, fn) or "{}", False


def _shell(module: Module, fn: Function | None, call: ast.Call, plain: str) -> list[Evidence]:
    text, argv = _command(module, fn, _arg(call, 0, "args", "cmd", "command"))
    shell = argv is False or any(
        k.arg == "shell" and not (isinstance(k.value, ast.Constant) and not k.value.value)
        for k in call.keywords
    )
    out = [
        _ev(module, call, cat, f"runs `{text[:60]}` ({label})", "shell", Confidence.HIGH)
        for rx, cat, label in SHELL_HINTS
        if rx.search(text)
    ]
    program = text.split(" ", 1)[0]
    # An argv list with a fixed program runs that program; a shell string with holes, an
    # unknown program or an interpreter runs whatever the agent passes.
    if program == "{}" or program.rsplit("/", 1)[-1] in INTERPRETERS or (shell and "{}" in text):
        reason = f"calls {plain} with a command built at runtime"
        out.append(_ev(module, call, Category.CODE_EXECUTION, reason, "shell", Confidence.HIGH))
    return out


def _http(
    module: Module, fn: Function | None, call: ast.Call, method: str, plain: str
) -> list[Evidence]:
    url = module.string_value(_arg(call, 1 if plain.endswith("request") else 0, "url"), fn)
    reason = f"HTTP {method} {url[:60]}".rstrip()
    hinted = [cat for rx, cat in HTTP_HINTS if rx.search(url)]
    if method == "DELETE":  # removing a membership revokes access; cancelling a plan is money
        special = [c for c in hinted if c in (Category.ACCESS, Category.MONEY)]
        cats = special or [Category.DELETION]
        return [_ev(module, call, c, reason, "http", Confidence.MEDIUM) for c in cats]
    if HTTP_READ_URL.search(url):
        return []
    if hinted:
        return [_ev(module, call, c, reason, "http", Confidence.MEDIUM) for c in hinted]
    conf = Confidence.LOW if method == "POST" else Confidence.MEDIUM
    return [_ev(module, call, Category.PRODUCTION, f"{reason} (external write)", "http", conf)]


def _http_method(
    module: Module, fn: Function | None, call: ast.Call, root: str, receiver: str, tail: str
) -> str | None:
    is_http = root in HTTP_ROOTS or bool(HTTP_RECEIVER.search(receiver))
    if not is_http:
        return None
    if root not in HTTP_ROOTS and receiver.lower().endswith("session"):
        # `db.session.delete(row)` is an ORM session; an HTTP session is given a URL.
        url = module.string_value(_arg(call, 1 if tail == "request" else 0, "url"), fn)
        if "/" not in url:
            return None
    if tail in ("post", "put", "patch", "delete"):
        return tail.upper()
    if tail == "request":
        method = _arg(call, 0, "method")
        if isinstance(method, ast.Constant) and isinstance(method.value, str):
            upper = method.value.upper()
            return upper if upper in ("POST", "PUT", "PATCH", "DELETE") else None
    return None


def call_evidence(module: Module, fn: Function | None, call: ast.Call) -> list[Evidence]:
    """What one call does, if it is risky (empty list otherwise)."""
    plain = strip_calls(module.dotted(call.func, fn))
    receiver, _, tail = plain.rpartition(".")
    root = plain.split(".", 1)[0]
    if plain in SHELL_CALLS:
        return _shell(module, fn, call, plain)
    if plain in ("eval", "exec"):
        reason = f"calls {plain}() on code"
        return [_ev(module, call, Category.CODE_EXECUTION, reason, "call", Confidence.HIGH)]
    method = _http_method(module, fn, call, root, receiver, tail)
    if method is not None:
        return _http(module, fn, call, method, plain)
    out: list[Evidence] = []
    seen: set[Category] = set()
    for rule in _BY_TAIL.get(tail, ()):
        if rule.category not in seen and (rule.receiver is None or rule.receiver.search(receiver)):
            seen.add(rule.category)
            reason = f"calls {plain} ({rule.label})"
            out.append(_ev(module, call, rule.category, reason, "call", rule.confidence))
    if KUBERNETES_TAIL.match(tail):
        cat = Category.DELETION if tail.startswith("delete") else Category.PRODUCTION
        out.append(_ev(module, call, cat, f"calls {plain} (Kubernetes)", "call", Confidence.HIGH))
    if tail in SQL_TAILS:
        sql = module.string_value(_arg(call, 0, "statement", "sql", "query"), fn)
        for rx, cat, label, conf in SQL_RULES:
            if rx.search(sql):
                out.append(_ev(module, call, cat, f"{label}: `{sql.strip()[:60]}`", "sql", conf))
                break
    if not out and not tail[:1].isupper():  # a constructor call builds, it does not act
        for cat, why in name_categories(tail, alone=False):
            if cat is Category.CUSTOMER_CONTACT and QUEUE_RECEIVER.search(receiver):
                continue
            reason = f"calls {plain} ({why})"
            out.append(_ev(module, call, cat, reason, "call", Confidence.MEDIUM))
    return out


# -- functions --------------------------------------------------------------------------------


@dataclass(slots=True)
class FunctionFindings:
    """The evidence of one function body (with its callees) and where the first risk starts."""

    evidence: list[Evidence]
    first_line: int
    """The line, in this function, of the first call that leads to evidence (0 if none)."""


class Classifier:
    """Evidence for function bodies, following calls into the project's own functions."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._cache: dict[int, FunctionFindings] = {}
        self._active: set[int] = set()

    def function(self, fn: Function) -> FunctionFindings:
        """The evidence of `fn`'s body and of the project functions it calls."""
        key = id(fn)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if key in self._active:
            return FunctionFindings([], 0)
        self._active.add(key)
        evidence: list[Evidence] = []
        first = 0
        for attr, line in fn.attr_writes:
            category = FIELD_WRITES.get(attr.lower())
            if category is not None:
                reason = f"sets `.{attr}` on a stored record"
                evidence.append(
                    Evidence(
                        category,
                        reason,
                        fn.module.rel,
                        line,
                        "write",
                        Confidence.MEDIUM,
                        fn.module.snippet(line),
                    )
                )
                first = line if not first else min(first, line)
        for call in fn.calls:
            found = call_evidence(fn.module, fn, call)
            callee = self.callee(fn, call)
            if callee is not None and callee is not fn:
                deeper = self.function(callee).evidence
                found += [replace(e, reason=f"{e.reason} (via {callee.name})") for e in deeper]
            if found:
                first = call.lineno if not first else min(first, call.lineno)
                evidence += found
        self._active.discard(key)
        result = FunctionFindings(_dedup(evidence), first)
        self._cache[key] = result
        return result

    def callee(self, fn: Function, call: ast.Call) -> Function | None:
        """The project function a call invokes, when it can be told statically."""
        func = call.func
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "self"
            and fn.cls is not None
        ):
            method = fn.cls.methods.get(func.attr)
            if method is not None:
                return method
        return self.project.function(strip_calls(fn.module.dotted(func, fn)), near=fn.module)


def _dedup(evidence: list[Evidence]) -> list[Evidence]:
    seen: set[tuple[Category, str, str, int]] = set()
    out: list[Evidence] = []
    for e in evidence:
        key = (e.category, e.reason, e.file, e.line)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out
