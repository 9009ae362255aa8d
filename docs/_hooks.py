"""mkdocs hooks (``hooks:`` in mkdocs.yml) and a griffe extension for the API pages.

* ``<!-- config-reference -->`` in a page becomes the configuration reference, generated from the
  experiment registry at build time: what ``spinlearn show NAME`` prints, for every experiment. It is
  never copied by hand, so it cannot drift from the code.
* ``<!-- experiments:STUDY -->`` becomes the table of that study's registered experiments.
* ``<!-- results -->`` becomes the content of ``docs/results/results.md`` (generated from
  ``spinlearn reproduce``), or a note saying it has not been generated.
* ``<!-- bench-results -->`` becomes the table of ``benchmarks/results.json`` (``make bench``).
* Math (``$...$`` and ``$$...$$`` through ``pymdownx.arithmatex``) is rendered to inline SVG with
  matplotlib's mathtext when the site is built. Why: MathJax or KaTeX would have to come from a CDN
  or be vendored into the repository, and the site must render offline with nothing fetched.
  matplotlib is already a dependency of spinlearn. A formula in the guide that mathtext cannot
  parse fails the strict build; one in a docstring is shown as its TeX source instead, so an edit
  to a docstring elsewhere never breaks ``make test``.
* :class:`RstDocstrings` (a griffe extension, loaded by mkdocstrings) rewrites the reStructuredText
  of the docstrings into Markdown before they are rendered: ``:math:`x``` and ``.. math::`` become
  arithmatex math, ``:class:`~a.b.C``` becomes ```C```.
"""

from __future__ import annotations

import ast
import functools
import html
import io
import logging
import re
from pathlib import Path

import griffe

log = logging.getLogger("mkdocs.hooks.spinlearn")

DOCS = Path(__file__).parent

# ------------------------------------------------------------------------------------------------
# Configuration reference

# The studies, each with the modules of spinlearn.experiments that register its experiments. The
# experiment tables on the study pages (<!-- experiments:KEY -->) and the configuration reference
# are grouped by these; an experiment in a module not listed here still appears in the reference,
# under its module's name.
STUDIES = {
    "afd": (
        "Study 1: MTJ neurons trained by analog finite differences",
        ("spinlearn.experiments.iris", "spinlearn.experiments.mnist", "spinlearn.experiments.gradcheck"),
    ),
    "dw-sgld": ("Study 2: domain-wall synapses trained by Langevin dynamics", ("spinlearn.experiments.dw",)),
    "hopfield": ("Study 3: self-learning magnetic Hopfield film", ("spinlearn.experiments.hopfield",)),
    "danp": ("Study 4: stochastic MTJs and node perturbation (DANP)", ("spinlearn.experiments.danp",)),
}
STUDY_OF_MODULE = {module: title for title, modules in STUDIES.values() for module in modules}
_EXPERIMENTS_MARKER = re.compile(r"<!-- experiments:([\w-]+) -->")


def _cell(text: str) -> str:
    """A Markdown table cell: pipes escaped, newlines folded."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _target_text(target) -> str:
    if target.value is None:
        return f"`{target.metric}` reported, no target ({target.source})"
    kind = "paper" if target.published else "our threshold"
    sign = ">=" if target.higher_is_better else "<="
    where = [target.reading] if target.reading else []
    where += [f"{', '.join(target.backends)} runs"] if target.backends else []
    about = f"; {', '.join(where)}" if where else ""
    return f"`{target.metric}` {sign} {target.value:g} ({kind}{about}; {target.source})"


def config_reference() -> str:
    """Every experiment's keys, defaults and docs, as ``spinlearn show NAME`` prints them."""
    from spinlearn import config
    from spinlearn.experiments import EXPERIMENTS

    groups: dict[str, list] = {}
    for exp in EXPERIMENTS.values():
        module = getattr(exp.run, "__module__", "")
        groups.setdefault(STUDY_OF_MODULE.get(module, module), []).append(exp)

    out: list[str] = []
    for study in sorted(groups):
        out += [f"## {study}", ""]
        for exp in sorted(groups[study], key=lambda e: e.name):
            defaults = config.to_dict(exp.default_config())
            out += [f"### `{exp.name}`", "", _cell(exp.summary) + ".", ""]
            if exp.targets:
                out += ["Targets: " + "; ".join(_target_text(t) for t in exp.targets) + ".", ""]
            quick = ", ".join(f"`{k}={v}`" for k, v in exp.quick.items()) or "nothing"
            quick_seeds = exp.quick_seeds if exp.quick_seeds is not None else exp.seeds
            out += [
                f"`spinlearn reproduce` runs {exp.seeds} seed(s); `--quick` runs {quick_seeds} "
                f"and sets {quick}.",
                "",
                "| key | default | meaning |",
                "|---|---|---|",
            ]
            for key, _, doc in config.describe(exp.config_cls):
                section, name = key.split(".", 1)
                value = defaults[section][name]
                out.append(f"| `{key}` | `{_cell(repr(value))}` | {_cell(doc)} |")
            out.append("")
    return "\n".join(out)


def experiments_table(study: str) -> str:
    """The experiments of one study as ``spinlearn list`` knows them: name, summary, targets."""
    from spinlearn.experiments import EXPERIMENTS

    if study not in STUDIES:
        raise KeyError(f"<!-- experiments:{study} -->: no such study (known: {', '.join(STUDIES)})")
    modules = STUDIES[study][1]
    rows = ["| experiment | what it runs | target |", "|---|---|---|"]
    for exp in sorted(EXPERIMENTS.values(), key=lambda e: e.name):
        if getattr(exp.run, "__module__", "") in modules:
            targets = "; ".join(_target_text(t) for t in exp.targets) or "none"
            rows.append(f"| `{exp.name}` | {_cell(exp.summary)} | {_cell(targets)} |")
    return "\n".join(rows)


def results_table() -> str:
    path = DOCS / "results" / "results.md"
    if path.is_file():  # its own title gives way to the page's
        return "\n".join(line for line in path.read_text().splitlines() if not line.startswith("# "))
    return "*Not generated yet: run `spinlearn reproduce --out docs/results`.*"


BENCH_RESULTS = DOCS.parent / "benchmarks" / "results.json"
# what each benchmark's table row shows beside its ratio: its absolute times
_BENCH_TIMES = {
    "afd_vs_torch": ("afd_epoch_s_median", "tanh_epoch_s_median", "s / epoch"),
    "dw_sgld_vs_sgd": ("dw_sgld_step_s_median", "sgd_step_s_median", "s / step"),
    "danp_vs_bp": ("danp_step_ms_median", "bp_same_step_ms_median", "ms / step"),
    "hopfield_n1000": ("texture_total_s_median", "hebbian_total_s_median", "s"),
    "chip_vs_torch": ("chip_step_s_median", "float_step_s_median", "s / step"),
    "sweep_vs_serial": ("serial_s", "sweep_s", "s"),
}


def bench_results_table() -> str:
    """The last committed ``benchmarks/results.json`` (``make bench``) as a table: never copied by hand."""
    import json

    if not BENCH_RESULTS.is_file():
        return "*Not generated yet: run `make bench`, which writes `benchmarks/results.json`.*"
    data = json.loads(BENCH_RESULTS.read_text())
    m = data["machine"]
    load = ", ".join(f"{x:g}" for x in m.get("load_average", []))
    out = [
        f"Measured {m['date']} on {m['cpus']} CPUs ({m['processor']}, torch {m['torch']} with "
        f"{m['cpu_capability']} kernels, {m['torch_threads']} threads), load average {load or 'unknown'}, "
        f"device `{data['device']}`.",
        "",
        "| Benchmark | ratio | per round: median | quartiles | range | rounds | device rule | digital |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in data["results"].items():
        rounds = result.get("ratio_rounds")
        spread = (
            [f"{rounds['median']:.3f}", f"{rounds['q1']:.3f} to {rounds['q3']:.3f}",
             f"{rounds['min']:.3f} to {rounds['max']:.3f}", str(rounds["rounds"])]
            if rounds else ["", "", "", ""]
        )  # fmt: skip
        device_key, digital_key, unit = _BENCH_TIMES.get(name, ("", "", ""))
        times = [f"{result[k]:.4g} {unit}" if k in result else "" for k in (device_key, digital_key)]
        out.append("| " + " | ".join([f"`{name}`", f"{result['ratio']:.3f}", *spread, *times]) + " |")
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- config-reference -->" in markdown:
        markdown = markdown.replace("<!-- config-reference -->", config_reference())
    markdown = _EXPERIMENTS_MARKER.sub(lambda m: experiments_table(m.group(1)), markdown)
    if "<!-- results -->" in markdown:
        markdown = markdown.replace("<!-- results -->", results_table())
    if "<!-- bench-results -->" in markdown:
        markdown = markdown.replace("<!-- bench-results -->", bench_results_table())
    return markdown


# ------------------------------------------------------------------------------------------------
# Math: TeX -> inline SVG at build time

FONT_PT = 12.0  # matches Material's body text (16 px); sizes are then given in em, so math scales
DISPLAY_SCALE = 1.15  # displayed formulas a little larger than the text, as in print
# arithmatex's generic output: \( ... \) in a span (inline), \[ ... \] in a div (display)
_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
_BLOCK = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)
# TeX that mathtext lacks, with what it has instead
_TEX_FIXES = [
    (re.compile(r"\\(?:operatorname|text|textrm)\{"), r"\\mathrm{"),
    (re.compile(r"\\tfrac"), r"\\frac"),
    (re.compile(r"\\lVert|\\rVert"), r"\\|"),
    (re.compile(r"\\dots\b"), r"\\ldots"),
    (re.compile(r"\\(le|ge|ne)(?![a-zA-Z])"), r"\\\1q"),
    (re.compile(r"\\frac\s*(\w)\s*(\w)"), r"\\frac{\1}{\2}"),  # \frac12: TeX, not mathtext
]


class MathError(ValueError):
    pass


@functools.cache
def tex_to_svg(tex: str, display: bool) -> str:
    """One formula as an inline ``<svg>`` whose glyphs take the text colour (dark mode too)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    source = " ".join(tex.split())
    for pattern, repl in _TEX_FIXES:
        source = pattern.sub(repl, source)
    if display:  # mathtext sets every \frac in text style; a displayed formula wants full-size ones
        source = re.sub(r"\\frac(?![a-z])", r"\\dfrac", source)
    else:  # and every \sum with its limits below, which would stretch a line of text
        source = re.sub(r"\\sum(?![a-z])", r"\\Sigma", source)
    size = FONT_PT
    buf = io.BytesIO()
    rc = {
        "mathtext.fontset": "cm",
        "svg.fonttype": "path",
        "svg.hashsalt": "spinlearn",  # stable ids: the same site from the same sources
        "savefig.transparent": True,
    }
    try:
        with matplotlib.rc_context(rc):
            depth = mathtext.math_to_image(f"${source}$", buf, prop=FontProperties(size=size), format="svg")
            # The figure is a whole number of points wide; the formula's own width trims the slack
            # on the right, which would otherwise read as a space before the next character.
            parsed = mathtext.MathTextParser("path").parse(f"${source}$", 72, FontProperties(size=size))
    except ValueError as exc:
        raise MathError(f"{tex!r}: {str(exc).splitlines()[-1] if str(exc) else exc}") from None
    exact_width = parsed[0]
    svg = buf.getvalue().decode().strip()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r"(fill|stroke): ?#000000", r"\1: currentColor", svg)
    svg = re.sub(r"\n\s*", " ", svg)
    width = min(float(re.search(r'width="([\d.]+)pt"', svg).group(1)), exact_width + 0.5)
    height = float(re.search(r'height="([\d.]+)pt"', svg).group(1))
    svg = re.sub(r'viewBox="0 0 [\d.]+ ', f'viewBox="0 0 {width:.2f} ', svg, count=1)
    scale = DISPLAY_SCALE if display else 1.0

    def em(points: float) -> str:
        return f"{points * scale / FONT_PT:.3f}em"

    style = f"vertical-align:-{em(depth)}" if not display else "display:block;margin:0.6em auto"
    attrs = (
        f'width="{em(width)}" height="{em(height)}" role="img" aria-label="{html.escape(tex.strip())}" '
        f'class="math" style="{style}"'
    )
    svg = re.sub(r'width="[\d.]+pt" height="[\d.]+pt"', lambda _: attrs, svg, count=1)
    return svg


# A glyph outline in a formula's <defs>: matplotlib names it by font and character ("Cmmi10-49"),
# so the same id always holds the same outline.
_GLYPH = re.compile(r'<path id="([^"]+)" (d="[^"]*"(?: transform="[^"]*")?)\s*/>')


def split_glyphs(svg: str) -> tuple[str, dict[str, str]]:
    """A formula without its glyph outlines, and the outlines by id. Why: every formula repeats the
    outlines of its characters (most of its size); a page keeps one copy of each (``render_math``)."""
    glyphs = {f"mt-{m.group(1)}": m.group(2) for m in _GLYPH.finditer(svg)}
    svg = _GLYPH.sub("", svg)
    svg = re.sub(r"<defs>\s*(<style[^>]*>.*?</style>)?\s*</defs>", "", svg, flags=re.S)
    svg = re.sub(r'<g id="[^"]*"', "<g", svg)  # figure_1, text_1, ...: the same in every formula
    svg = re.sub(r'<g>\s*<path d="[^"]*"\s+style="fill: ?none"\s*/>\s*</g>', "", svg)  # the empty figure
    svg = re.sub(r'href="#([^"]+)"', r'href="#mt-\1"', svg)
    return re.sub(r">\s+<", "><", svg), glyphs


def render_math(content: str, strict: bool, where: str) -> str:
    """Every arithmatex formula of a page as inline SVG, and one hidden copy of the glyphs they use."""
    glyphs: dict[str, str] = {}

    def replace(match: re.Match, display: bool) -> str:
        tex = html.unescape(match.group(1))
        try:
            svg, used = split_glyphs(tex_to_svg(tex, display))
        except MathError as exc:
            if strict:
                log.warning("%s: math that mathtext cannot render: %s", where, exc)
            else:
                log.info("%s: formula left as TeX: %s", where, exc)
            code = f"<code>{html.escape(tex.strip())}</code>"
            return f'<div class="math-tex">{code}</div>' if display else code
        glyphs.update(used)
        return f'<div class="math-display">{svg}</div>' if display else svg

    content = _BLOCK.sub(lambda m: replace(m, True), content)
    content = _INLINE.sub(lambda m: replace(m, False), content)
    if not glyphs:
        return content
    paths = "".join(f'<path id="{gid}" {attrs}/>' for gid, attrs in sorted(glyphs.items()))
    sprite = (
        '<svg xmlns="http://www.w3.org/2000/svg" aria-hidden="true" '
        f'style="position:absolute;width:0;height:0;overflow:hidden"><defs>{paths}</defs></svg>'
    )
    return sprite + content


def on_page_content(content: str, page, config, files) -> str:
    # The guide's own formulas must render; the docstrings' are other people's and may be shown as TeX.
    strict = not page.file.src_uri.startswith("api/")
    return render_math(content, strict, page.file.src_uri)


# ------------------------------------------------------------------------------------------------
# Docstrings: reStructuredText -> Markdown (the docstrings stay as they are in the code)

_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_XREF_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc|py:\w+):`~?([^`]+)`")
_OTHER_ROLE = re.compile(r"\\? ?:(?:sup|sub|term|ref):`([^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)$")


def _xref(match: re.Match) -> str:
    target = match.group(1)
    label = re.match(r"(.*?)\s*<(.+)>$", target)  # :meth:`label <target>`
    name = label.group(1) if label else target.rsplit(".", 1)[-1]
    return f"`{name}`"


def _fence_doctests(lines: list[str]) -> list[str]:
    """``>>>`` blocks would read as nested Markdown quotes: fence them as ``pycon`` code."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].lstrip().startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        pad = " " * _indent(lines[i])
        out += ["", f"{pad}```pycon"]
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out += [f"{pad}```", ""]
    return out


def rst_to_markdown(text: str) -> str:
    lines = _fence_doctests(text.splitlines())
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        # A directive: the first line's text and every line indented deeper than the directive.
        indent = len(m.group("indent").expandtabs())
        body = [m.group("first")]
        i += 1
        while _continues(lines, i, indent):
            body.append(lines[i].strip())
            i += 1
        tex = " ".join(part for part in body if part)
        pad = " " * indent
        # One display formula per `\\` line break (mathtext has no multi-line environments).
        for part in re.split(r"\\\\", tex):
            if part.strip():
                out += ["", f"{pad}$${part.strip()}$$", ""]
    text = "\n".join(out)
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    text = _XREF_ROLE.sub(_xref, text)
    return _OTHER_ROLE.sub(lambda m: m.group(1), text)


def _continues(lines: list[str], i: int, indent: int) -> bool:
    """Whether line ``i`` still belongs to a directive at ``indent``: indented deeper, or blank
    with a deeper-indented line after it."""
    if i >= len(lines):
        return False
    if lines[i].strip():
        return _indent(lines[i]) > indent
    return i + 1 < len(lines) and bool(lines[i + 1].strip()) and _indent(lines[i + 1]) > indent


def _indent(line: str) -> int:
    return len(line.expandtabs()) - len(line.expandtabs().lstrip())


def _modules(module: griffe.Module):
    yield module
    for member in module.members.values():
        if not member.is_alias and member.is_module:
            yield from _modules(member)


_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _literal(expr) -> object:
    try:
        return ast.literal_eval(str(expr))
    except (ValueError, SyntaxError):
        return None


class RstDocstrings(griffe.Extension):
    """Loaded by mkdocstrings (``extensions:`` in mkdocs.yml).

    Converts each docstring to Markdown once, and shows a configuration field declared as
    ``name: T = param(default, "doc", ge=..., le=...)`` (``spinlearn._fields.param``) with its plain
    default in the signature and its doc and range as the field's docstring, instead of the whole
    ``param(...)`` call.
    """

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        """A subpackage re-exports names of its own submodules (``from spinlearn.devices import
        MTJ``); the API pages render every submodule in full, so the re-exports would show each
        class twice. They are dropped from the pages (not from the code)."""
        for module in _modules(pkg):
            for name, member in list(module.members.items()):
                if member.is_alias and member.target_path.startswith(module.path + "."):
                    module.del_member(name)

    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs) -> None:
        call = attr.value
        if not isinstance(call, griffe.ExprCall) or str(call.function).rsplit(".", 1)[-1] != "param":
            return
        positional = [a for a in call.arguments if not isinstance(a, griffe.ExprKeyword)]
        keywords = {a.name: a.value for a in call.arguments if isinstance(a, griffe.ExprKeyword)}
        if positional:
            attr.value = positional[0]
        elif "default_factory" in keywords:
            attr.value = f"{keywords['default_factory']}()"
        doc = _literal(positional[1]) if len(positional) > 1 else _literal(keywords.get("doc", ""))
        limits = [f"{sign} {keywords[k]}" for k, sign in _BOUNDS.items() if k in keywords]
        if "choices" in keywords:
            limits.append(f"one of {keywords['choices']}")
        allowed = "allowed: " + ", ".join(limits) if limits else ""
        text = ". ".join(part for part in (doc if isinstance(doc, str) else "", allowed) if part)
        if text and attr.docstring is None:
            attr.docstring = griffe.Docstring(text[0].upper() + text[1:] + ".", parent=attr)
