"""The report being built: figures (PNG + the plotted data as JSON), tables (HTML + CSV), notes
and omitted figures, in sections; written out as one static HTML page (no script, no external
resource, relative links only)."""

import csv
import html
import json
import math
import os
import re
from dataclasses import dataclass, field

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

MANIFEST = "MANIFEST"     # what the last report wrote, removed before the next one writes
DPI = 110


def safe_name(text):
    """A deterministic file-name stem: letters, digits, '_', '-', '.' only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "x"


def jsonable(x):
    """x with numpy values made plain and NaN/Inf as null (strict JSON)."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


@dataclass
class Entry:
    kind: str                 # figure | table | text | omitted | heading (caption: its tag)
    title: str
    caption: str = ""
    name: str = ""            # file stem (figure: NAME.png + NAME.json; table: NAME.csv)
    columns: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    number: int = 0


@dataclass
class Section:
    title: str
    intro: str
    entries: list = field(default_factory=list)


class Report:
    def __init__(self, out, title, header_lines):
        self.out = out
        self.title = title
        self.header_lines = header_lines
        self.sections = []
        self.written = []
        self.figures = 0
        os.makedirs(out, exist_ok=True)
        self._remove_previous()

    def _remove_previous(self):
        """Delete the files the previous report listed, so no stale figure survives."""
        path = os.path.join(self.out, MANIFEST)
        if not os.path.isfile(path):
            return
        with open(path) as f:
            for name in f.read().split():
                target = os.path.join(self.out, os.path.basename(name))
                if os.path.isfile(target):
                    os.remove(target)

    def section(self, title, intro=""):
        self.sections.append(Section(title, intro))

    def _add(self, entry):
        self.sections[-1].entries.append(entry)
        return entry

    def _path(self, filename):
        path = os.path.join(self.out, filename)
        self.written.append(path)
        return path

    def figure(self, fig, name, title, caption, data):
        """Save fig as NAME.png and the plotted numbers as NAME.json; list it in the page."""
        name = safe_name(name)
        self.written += save_figure(fig, os.path.join(self.out, name + ".png"), data)
        self.figures += 1
        self._add(Entry("figure", title, caption, name, number=self.figures))

    def heading(self, title, tag="", lines=()):
        """A sub-heading inside a section (listed in the contents), with an optional coloured
        tag (CSS class tag-TAG) and paragraphs under it."""
        self._add(Entry("heading", title, tag, safe_name("h-" + title), rows=list(lines)))

    def omit(self, title, reason):
        """A figure whose data is absent: one line in the page, no image."""
        self._add(Entry("omitted", title, reason))

    def text(self, title, lines):
        self._add(Entry("text", title, rows=list(lines)))

    def table(self, name, title, caption, columns, rows):
        """A table in the page and as NAME.csv (cells: str or numbers; None prints empty)."""
        name = safe_name(name)
        with open(self._path(name + ".csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            w.writerows([["" if c is None else c for c in row] for row in rows])
        self._add(Entry("table", title, caption, name, columns=list(columns), rows=rows))

    # ---------------------------------------------------------------- HTML
    def write(self):
        """Write index.html and the manifest; return the list of files written."""
        with open(self._path("index.html"), "w") as f:
            f.write(self._html())
        with open(os.path.join(self.out, MANIFEST), "w") as f:
            f.write("\n".join(sorted(os.path.basename(p) for p in self.written)) + "\n")
        return self.written

    def _html(self):
        e = html.escape
        parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                 f"<title>{e(self.title)}</title>", f"<style>{CSS}</style></head><body>",
                 f"<h1>{e(self.title)}</h1>"]
        parts += [f"<p class=\"meta\">{e(line)}</p>" for line in self.header_lines]
        parts.append(self._contents())
        for i, sec in enumerate(self.sections, 1):
            parts.append(f'<section id="s{i}"><h2>{i}. {e(sec.title)}</h2>')
            if sec.intro:
                parts.append(f"<p>{e(sec.intro)}</p>")
            parts += [self._entry(en) for en in sec.entries]
            parts.append("</section>")
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def _contents(self):
        e = html.escape
        items = []
        for i, sec in enumerate(self.sections, 1):
            sub = []
            for en in sec.entries:
                if en.kind == "figure":
                    sub.append(f'<li><a href="#{en.name}">Figure {en.number}: {e(en.title)}</a></li>')
                elif en.kind == "omitted":
                    sub.append(f'<li class="omitted">{e(en.title)}: omitted</li>')
                elif en.kind == "heading":
                    tag = f" ({e(en.caption)})" if en.caption else ""
                    sub.append(f'<li><a href="#{en.name}">{e(en.title)}</a>{tag}</li>')
                elif en.kind == "table":
                    sub.append(f'<li><a href="#{en.name}">Table: {e(en.title)}</a></li>')
            inner = f"<ul>{''.join(sub)}</ul>" if sub else ""
            items.append(f'<li><a href="#s{i}">{e(sec.title)}</a>{inner}</li>')
        return f'<nav><h2>Contents</h2><ol>{"".join(items)}</ol></nav>'

    def _entry(self, en):
        e = html.escape
        if en.kind == "figure":
            return (f'<figure id="{en.name}"><img src="{en.name}.png" alt="{e(en.title)}">'
                    f"<figcaption><b>Figure {en.number}: {e(en.title)}.</b> {e(en.caption)} "
                    f'<a href="{en.name}.json">Plotted data ({en.name}.json)</a>.</figcaption></figure>')
        if en.kind == "omitted":
            return f'<p class="omitted"><b>{e(en.title)}</b>: omitted &mdash; {e(en.caption)}</p>'
        if en.kind == "heading":
            tag = (f' <span class="tag tag-{safe_name(en.caption)}">{e(en.caption)}</span>'
                   if en.caption else "")
            body = "".join(f"<p>{e(str(line))}</p>" for line in en.rows)
            return f'<h3 class="sub" id="{en.name}">{e(en.title)}{tag}</h3>{body}'
        if en.kind == "text":
            body = "".join(f"<li>{e(str(line))}</li>" for line in en.rows)
            return f'<div class="text"><h3>{e(en.title)}</h3><ul>{body}</ul></div>'
        head = "".join(f"<th>{e(str(c))}</th>" for c in en.columns)
        body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>"
                       for row in en.rows)
        return (f'<div class="table" id="{en.name}"><h3>{e(en.title)}</h3><p>{e(en.caption)} '
                f'<a href="{en.name}.csv">{en.name}.csv</a>.</p>'
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def save_figure(fig, png, data):
    """fig as the PNG file png and data (the plotted numbers) as JSON beside it (same stem);
    closes fig and returns the two paths. Same figure and data, byte-identical files."""
    fig.savefig(png, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    path = os.path.splitext(png)[0] + ".json"
    with open(path, "w") as f:
        json.dump(jsonable(data), f, indent=1, sort_keys=True)
        f.write("\n")
    return [png, path]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return html.escape(f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}")
    return html.escape(str(value))


CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 84em; color: #222; line-height: 1.35; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { font-size: 1.05em; }
.meta { color: #555; margin: 0.2em 0; font-size: 0.9em; }
nav ol { columns: 2; font-size: 0.9em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; max-width: 70em; }
.omitted { color: #8a5a00; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tbody tr:nth-child(even) { background: #fafafa; }
.table { overflow-x: auto; } td:first-child { white-space: nowrap; }
h3.sub { font-size: 1.25em; margin-top: 2em; border-bottom: 1px dotted #ccc; }
.tag { color: #fff; background: #777; padding: 0 0.4em; border-radius: 3px; font-size: 0.85em; }
.tag-CONFIRMED { background: #2e7d32; } .tag-REFUTED { background: #c62828; }
.tag-INCONCLUSIVE { background: #757575; }
"""
