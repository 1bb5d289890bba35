#!/usr/bin/env python3
"""test_jinja_corpus.py - spoke's Jinja chat-template interpreter against
Python Jinja2 (Debian python3-jinja2, test-only) on the template corpus in
tests/data/chat_templates/ (real templates from public model repositories,
see SOURCES.md there) times the conversations of cases.json.

The reference environment is the one Hugging Face transformers uses for
apply_chat_template: an immutable sandbox with trim_blocks, lstrip_blocks and
loop controls, raise_exception(), strftime_now(), a tojson filter that is
json.dumps(ensure_ascii=False, indent=, separators=, sort_keys=), and the
{% generation %} block as a plain block. For each (template, case) both
render, or both fail; outputs must be byte-equal. Prints a results table.
Exit 77 (skip) without python3-jinja2 or the render helper."""
import datetime
import glob
import json
import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("SPOKE_SRC_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BUILD = os.environ.get("SPOKE_BUILD_DIR", os.path.join(SRC, "build"))
RENDER = os.path.join(BUILD, "jinja_render")
DATA = os.path.join(SRC, "tests", "data", "chat_templates")

try:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    print("SKIP: python3-jinja2 is not installed (tools/deps.sh installs it)")
    sys.exit(77)
if not os.path.exists(RENDER):
    print("SKIP: %s not built" % RENDER)
    sys.exit(77)


class GenerationBlock(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %} renders its body (HF marks assistant spans with it)."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


class TemplateRaised(Exception):
    pass


def raise_exception(message):
    raise TemplateRaised(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.datetime.now().strftime(fmt)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[GenerationBlock, jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now


def py_render(tmpl, ctx):
    try:
        if isinstance(tmpl, str):
            tmpl = env.from_string(tmpl)
        return True, tmpl.render(**ctx)
    except Exception as e:  # the template's own errors count as "fails"
        return False, "%s: %s" % (type(e).__name__, e)


def c_render_all(tpath, ctxs):
    """render every context with one jinja_render process: [(ok, text)]"""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(ctxs, f)
        cpath = f.name
    try:
        p = subprocess.run([RENDER, tpath, cpath, "--each"], capture_output=True, timeout=120)
    finally:
        os.unlink(cpath)
    if p.returncode != 0:
        raise RuntimeError("jinja_render failed (rc %d): %s" % (p.returncode, p.stderr[-500:]))
    out, pos, res = p.stdout, 0, []
    while pos < len(out):
        nl = out.index(b"\n", pos)
        kind, n = out[pos:nl].split(b" ")
        n = int(n)
        res.append((kind == b"OK", out[nl + 1:nl + 1 + n].decode("utf-8")))
        pos = nl + 1 + n + 1
    return res


def main():
    cases = json.load(open(os.path.join(DATA, "cases.json")))
    templates = sorted(glob.glob(os.path.join(DATA, "*.jinja")))
    failures = []
    rows = []
    for t in templates:
        src = open(t, encoding="utf-8").read()
        name = os.path.basename(t)[:-6]
        n_eq = n_err = 0
        ctxs = []
        for case in cases:
            ctx = {k: v for k, v in case.items() if k != "name"}
            ctx.setdefault("bos_token", "<|bos|>")
            ctx.setdefault("eos_token", "<|eos|>")
            ctxs.append(ctx)
        cres = c_render_all(t, ctxs)
        if len(cres) != len(cases):
            failures.append((name, "*", True, "", False, "jinja_render returned %d results" % len(cres)))
            continue
        try:
            compiled = env.from_string(src)
        except Exception:
            compiled = src  # py_render reports the same error per case
        for case, ctx, (cok, cout) in zip(cases, ctxs, cres):
            pok, pout = py_render(compiled, ctx)
            if pok and cok and pout == cout:
                n_eq += 1
            elif not pok and not cok and "syntax error" not in cout and (
                    not pout.startswith("TemplateRaised: ") or pout[len("TemplateRaised: "):] in cout):
                n_eq += 1  # both fail: the template's own raise_exception message, or both reject the data
                n_err += 1
            else:
                failures.append((name, case["name"], pok, pout, cok, cout))
        rows.append((name, len(cases), n_eq, n_err))
    print("%-48s %5s %6s %s" % ("template", "cases", "equal", "(both raise)"))
    for name, n, eq, err in rows:
        print("%-48s %5d %6s %d" % (name, n, "yes" if eq == n else "%d/%d" % (eq, n), err))
    for name, case, pok, pout, cok, cout in failures[:20]:
        print("\nMISMATCH %s / %s" % (name, case))
        print("  jinja2 %s: %r" % ("ok" if pok else "error", pout[:1500]))
        print("  spoke  %s: %r" % ("ok" if cok else "error", cout[:1500]))
    print("%d templates, %d mismatches" % (len(rows), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
