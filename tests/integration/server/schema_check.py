"""schema_check.py - a small JSON-schema validator for the subset spoke's
constrained output supports (types, properties/required/additionalProperties,
enum, const, anyOf, items/minItems/maxItems, string lengths and formats,
integer ranges); shared by test_server_grammar.py and test_server_tools.py."""
import math
import re

FORMATS = {
    "date": r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])",
    "time": r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)",
    "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
}
FORMATS["date-time"] = FORMATS["date"] + "T" + FORMATS["time"]


def is_type(v, t):
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "null":
        return v is None
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    raise ValueError(t)


def validate(v, s, path="$"):
    """Errors of value v against schema s (the subset spoke supports)."""
    if s is True or s == {}:
        return []
    if "const" in s:
        return [] if v == s["const"] and type(v) is type(s["const"]) else ["%s: not the const" % path]
    if "enum" in s:
        return [] if any(v == e and type(v) is type(e) for e in s["enum"]) else ["%s: not in enum" % path]
    if "anyOf" in s:
        return [] if any(not validate(v, a, path) for a in s["anyOf"]) else ["%s: matches no anyOf" % path]
    types = s["type"] if isinstance(s["type"], list) else [s["type"]]
    if not any(is_type(v, t) for t in types):
        return ["%s: %r is not %s" % (path, v, types)]
    errs = []
    if isinstance(v, str):
        if "format" in s and not re.fullmatch(FORMATS[s["format"]], v):
            errs.append("%s: %r is not a %s" % (path, v, s["format"]))
        if len(v) < s.get("minLength", 0) or len(v) > s.get("maxLength", 1 << 30):
            errs.append("%s: length %d" % (path, len(v)))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if v < s.get("minimum", -math.inf) or v > s.get("maximum", math.inf):
            errs.append("%s: %r out of range" % (path, v))
    if isinstance(v, list):
        if len(v) < s.get("minItems", 0) or len(v) > s.get("maxItems", 1 << 30):
            errs.append("%s: %d items" % (path, len(v)))
        for i, it in enumerate(v):
            errs += validate(it, s.get("items", True), "%s[%d]" % (path, i))
    if isinstance(v, dict):
        props = s.get("properties", {})
        for r in s.get("required", []):
            if r not in v:
                errs.append("%s: missing %s" % (path, r))
        for k, x in v.items():
            if k in props:
                errs += validate(x, props[k], path + "." + k)
            elif s.get("additionalProperties", True) is False:
                errs.append("%s: extra property %s" % (path, k))
            elif isinstance(s.get("additionalProperties"), dict):
                errs += validate(x, s["additionalProperties"], path + "." + k)
    return errs
