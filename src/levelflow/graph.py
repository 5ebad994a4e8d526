"""Pictures of a pipeline: SVG (drawn here), a self-contained HTML page, Mermaid and DOT.

Levels are columns from left to right, the threads of a level are lanes stacked inside its
column and the steps of a thread are boxes left to right in their lane. Every name comes from
a user's file, so the SVG is built with ElementTree (which escapes text and attributes) and
the text formats quote every label through one escaping function each.

`--run` colours steps by their status in a run recorded by the local engine, read through
`load_run_statuses` (the one place that knows the state database's layout).
"""
from __future__ import annotations

import html
import re
import sqlite3
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .errors import LevelflowError, Problem
from .plan import STEP_STATUSES, Plan, PlanStep, PlanThread

FORMATS = {".svg": "svg", ".html": "html", ".mmd": "mermaid", ".dot": "dot"}
STATUS_COLOURS = {
    "succeeded": "#b7e1cd", "failed": "#f4a9a3", "continued": "#fce8b2", "skipped": "#e0e0e0",
    "running": "#c6dafc", "interrupted": "#f9cb9c", "pending": "#ffffff", "not_started": "#f1f3f4",
}
TYPE_COLOURS = {"async": "#4285f4", "sync": "#34a853", "workflows": "#a142f4"}

# Geometry in SVG user units. Labels use a monospace font so that a character count bounds
# a label's width: 0.6 em per character, the widest common monospace advance.
CHAR_WIDTH = 0.6
BOX_W, BOX_H = 260, 72
STEP_GAP = 30  # room for the arrow between two steps of a thread
LANE_LABEL_W = 140
LANE_TOP = 26  # room above the boxes for NEXT arcs
LANE_H = LANE_TOP + BOX_H + 12
COLUMN_PAD = 10
COLUMN_HEADER = 44
COLUMN_GAP = 60  # room for the arrow from one level to the next
MARGIN = 20
TITLE_H = 64


# ---------------------------------------------------------------- run statuses

def default_state_db() -> Path:
    """The database `levelflow run` records runs in when it is given no --state."""
    from .backends.local.store import default_state_path  # imported here: only `graph --run` needs it

    return default_state_path()


def load_run_statuses(state_db: str | Path, run_id: str, plan: Optional[Plan] = None) -> dict[str, str]:
    """Status of each step (JOB_ID -> status) in a run recorded by `levelflow run`; with `plan`,
    an error when the run is not one of this pipeline (another pipeline's, or other steps).

    Reads the table `steps(run_id TEXT, job_id TEXT, status TEXT, ...)`; when a step has
    several rows (a retried step), the last one written wins.
    """
    path = Path(state_db)
    if not path.is_file():
        raise LevelflowError([Problem(str(path), "state database not found (runs are recorded by `levelflow run`; pass --state)")])
    try:
        # a plain connection: read-only mode cannot open a WAL database whose -shm file is gone
        with sqlite3.connect(str(path), timeout=10) as db:
            rows = db.execute("SELECT job_id, status FROM steps WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
            known = [r[0] for r in db.execute("SELECT DISTINCT run_id FROM steps ORDER BY run_id LIMIT 20")] if not rows else []
    except sqlite3.Error as exc:
        raise LevelflowError([Problem(str(path), f"cannot read the run's steps from this state database: {exc}")]) from None
    if not rows:
        hint = f"; runs recorded: {', '.join(map(str, known))}" if known else "; it holds no runs"
        raise LevelflowError([Problem(str(path), f"no run {run_id!r} in this state database{hint}")])
    statuses = {str(job_id): str(status) for job_id, status in rows}
    if plan is not None:
        _check_run_is_of(plan, path, run_id, statuses)
    return statuses


def _check_run_is_of(plan: Plan, path: Path, run_id: str, statuses: dict[str, str]) -> None:
    """The run must be of `plan`'s pipeline, step for step: colours on another's would lie."""
    try:
        with sqlite3.connect(str(path), timeout=10) as db:
            row = db.execute("SELECT pipeline FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    except sqlite3.Error:  # a record with a steps table only: the steps decide
        row = None
    ours = {step.job_id for step in plan.steps()}
    if row is not None and row[0] != plan.name:
        raise LevelflowError([Problem(str(path), f"run {run_id} is a run of pipeline {row[0]!r}, not of {plan.name!r}; "
                                                 "give that pipeline's definition, or a run of this one (levelflow runs list)")])
    if set(statuses) != ours:
        missing = sorted(ours - set(statuses))
        which = f"; missing {', '.join(missing[:5])}" if missing else ""
        raise LevelflowError([Problem(str(path), f"run {run_id} did not run this definition's steps ({len(ours & set(statuses))} "
                                                 f"of its {len(ours)} are in it{which}); "
                                                 "the definition changed since, or the run is of another pipeline")])


# ---------------------------------------------------------------- what a picture says

def skipped_by_next(plan: Plan) -> set[str]:
    """JOB_IDs of the steps a NEXT jump passes over: they never run."""
    return {thread.steps[i].job_id for level in plan.levels for thread in level.threads
            for i in set(range(len(thread.steps))) - set(thread.executed_path())}


def executor_text(step: PlanStep) -> str:
    return f"workflow {step.workflow_id}" if step.type == "workflows" else (step.executor or "")


def timeout_text(step: PlanStep) -> str:
    """Type and time-out: what decides how long a step may run."""
    if step.type == "sync":
        return f"sync \u00b7 call time-out {step.call_timeout_seconds} s"
    text = f"{step.type} \u00b7 time-out {step.timeout_minutes:g} min"
    return text + f" \u00b7 poll {step.wait_seconds} s" if step.type == "async" else text


def marks_text(step: PlanStep) -> str:
    marks = []
    if step.continue_if_fail:
        marks.append("continue if fail")
    if step.retries:
        marks.append(f"retries {step.retries}")
    if step.next_job_id:
        marks.append(f"NEXT {step.next_job_id}")
    return ", ".join(marks)


def step_details(step: PlanStep, status: Optional[str]) -> str:
    """The full, untruncated description shown as a tooltip."""
    lines = [f"{step.job_name} (JOB_ID {step.job_id})"]
    if step.type == "workflows":
        lines.append(f"workflow: {step.workflow_id}")
    else:
        lines.append(f"executor: {step.executor}")
        if step.status_executor and step.status_executor != step.executor:
            lines.append(f"status executor: {step.status_executor}")
    lines.append(timeout_text(step))
    if step.estimated_minutes is not None:
        lines.append(f"estimated: {step.estimated_minutes:g} min")
    if marks_text(step):
        lines.append(marks_text(step))
    if status:
        lines.append(f"status: {status}")
    return "\n".join(lines)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "\u2026"


def fits(width: float, font_size: float) -> int:
    """How many characters of a monospace label fit in `width`."""
    return int(width / (font_size * CHAR_WIDTH))


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: str) -> str:
    """Drop the few characters XML cannot hold at all (ElementTree escapes the rest)."""
    return _XML_INVALID.sub("", str(text))


# ---------------------------------------------------------------- layout

@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Column:
    box: Box
    lanes: tuple[Box, ...]
    steps: tuple[tuple[Box, ...], ...]  # per thread, per step


def layout(plan: Plan) -> tuple[list[Column], float, float]:
    """Place every level, lane and step; returns the columns and the canvas size."""
    columns, x = [], MARGIN
    top = MARGIN + TITLE_H
    for level in plan.levels:
        widest = max(len(t.steps) for t in level.threads)
        width = 2 * COLUMN_PAD + LANE_LABEL_W + widest * BOX_W + (widest - 1) * STEP_GAP
        lanes, steps = [], []
        for ti, thread in enumerate(level.threads):
            lane = Box(x + COLUMN_PAD, top + COLUMN_HEADER + ti * LANE_H, width - 2 * COLUMN_PAD, LANE_H)
            lanes.append(lane)
            first_x = lane.x + LANE_LABEL_W
            steps.append(tuple(
                Box(first_x + si * (BOX_W + STEP_GAP), lane.y + LANE_TOP, BOX_W, BOX_H)
                for si in range(len(thread.steps))
            ))
        height = COLUMN_HEADER + len(level.threads) * LANE_H + COLUMN_PAD
        columns.append(Column(Box(x, top, width, height), tuple(lanes), tuple(steps)))
        x += width + COLUMN_GAP
    canvas_w = max(x - COLUMN_GAP + MARGIN, 640)
    canvas_h = top + max(c.box.h for c in columns) + MARGIN
    return columns, canvas_w, canvas_h


# ---------------------------------------------------------------- SVG

_STYLE = """
text { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; fill: #202124; }
.title { font-size: 18px; font-weight: bold; }
.subtitle { font-size: 12px; fill: #5f6368; }
.level-box { fill: #f8f9fa; stroke: #dadce0; }
.level-label { font-size: 14px; font-weight: bold; }
.lane-box { fill: #ffffff; stroke: #e8eaed; }
.lane-label { font-size: 11px; fill: #5f6368; }
.step-box { stroke: #5f6368; stroke-width: 1.2; }
.step.continue-if-fail .step-box { stroke: #e37400; stroke-dasharray: 6 3; stroke-width: 2; }
.step.skipped-by-next { opacity: 0.55; }
.name { font-size: 12px; font-weight: bold; }
.detail { font-size: 11px; }
.mark { font-size: 11px; fill: #b06000; }
.flow { stroke: #5f6368; stroke-width: 1.5; fill: none; marker-end: url(#arrow); }
.jump { stroke: #a142f4; stroke-width: 1.5; fill: none; stroke-dasharray: 5 3; marker-end: url(#arrow-jump); }
.jump-label { font-size: 10px; fill: #a142f4; }
.legend { font-size: 11px; }
"""


def _el(parent: ET.Element, tag: str, text: Optional[str] = None, **attrs) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.rstrip("_").replace("_", "-"): _num(v) for k, v in attrs.items()})
    if text is not None:
        element.text = clean(text)
    return element


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else clean(str(value))


def _text(parent, x, y, text, limit, cls, title=None):
    """A label cut to `limit` characters; the full text as a tooltip when it was cut."""
    shown = truncate(text, limit)
    if shown != text or title:
        group = _el(parent, "g")
        _el(group, "title", title or text)
        parent = group
    return _el(parent, "text", shown, x=x, y=y, class_=cls)


def _markers(svg: ET.Element) -> None:
    defs = _el(svg, "defs")
    for marker_id, colour in (("arrow", "#5f6368"), ("arrow-jump", "#a142f4")):
        marker = _el(defs, "marker", id=marker_id, viewBox="0 0 10 10", refX=9, refY=5,
                     markerWidth=7, markerHeight=7, orient="auto-start-reverse")
        _el(marker, "path", d="M0,0 L10,5 L0,10 z", fill=colour)
    _el(defs, "style", _STYLE)


def _draw_step(parent, step: PlanStep, box: Box, status: Optional[str], skipped: bool) -> None:
    classes = ["step", f"type-{step.type}"]
    if step.continue_if_fail:
        classes.append("continue-if-fail")
    if skipped:
        classes.append("skipped-by-next")
    group = _el(parent, "g", id=f"step-{step.job_id}", class_=" ".join(classes), data_job_id=step.job_id,
                **({"data_status": status} if status else {}))
    _el(group, "title", step_details(step, status))
    fill = STATUS_COLOURS.get(status, "#f1f3f4") if status else "#ffffff"
    _el(group, "rect", x=box.x, y=box.y, width=box.w, height=box.h, rx=6, class_="step-box", fill=fill)
    _el(group, "rect", x=box.x, y=box.y, width=6, height=box.h, rx=2, fill=TYPE_COLOURS[step.type], class_="type-bar")
    inner = box.w - 18
    left = box.x + 12
    _el(group, "text", truncate(step.job_name, fits(inner, 12)), x=left, y=box.y + 17, class_="name")
    _el(group, "text", truncate(executor_text(step), fits(inner, 11)), x=left, y=box.y + 33, class_="detail")
    _el(group, "text", truncate(timeout_text(step), fits(inner, 11)), x=left, y=box.y + 48, class_="detail")
    marks = ", ".join(m for m in (status, marks_text(step)) if m)
    if marks:
        _el(group, "text", truncate(marks, fits(inner, 11)), x=left, y=box.y + 63, class_="mark")


def _draw_thread(parent, thread: PlanThread, lane: Box, boxes: tuple[Box, ...], statuses: dict[str, str]) -> None:
    lane_group = _el(parent, "g", class_="lane", data_thread_id=thread.thread_id)
    _el(lane_group, "rect", x=lane.x, y=lane.y, width=lane.w, height=lane.h - 4, class_="lane-box")
    _text(lane_group, lane.x + 6, lane.y + LANE_TOP + BOX_H / 2 + 4, thread.thread_id,
          fits(LANE_LABEL_W - 12, 11), "lane-label", title=f"thread {thread.thread_id}")
    on_path = set(thread.executed_path())
    index = {s.job_id: i for i, s in enumerate(thread.steps)}
    for i, (step, box) in enumerate(zip(thread.steps, boxes)):
        if i + 1 < len(boxes) and not step.next_job_id:
            mid = box.y + box.h / 2
            _el(lane_group, "path", d=f"M{box.x + box.w:g},{mid:g} H{boxes[i + 1].x - 2:g}", class_="flow")
        if step.next_job_id:
            _draw_jump(lane_group, box, boxes[index[step.next_job_id]])
        _draw_step(lane_group, step, box, statuses.get(step.job_id) if statuses else None, i not in on_path)


def _draw_jump(parent, source: Box, target: Box) -> None:
    """A NEXT jump: a dashed arc over the skipped boxes, in the lane's top margin."""
    x1, x2 = source.x + source.w * 0.75, target.x + target.w * 0.25
    apex = source.y - LANE_TOP + 6  # the curve peaks at 3/4 of the way to its control points
    _el(parent, "path", d=f"M{x1:g},{source.y:g} C{x1:g},{apex:g} {x2:g},{apex:g} {x2:g},{target.y - 1:g}", class_="jump")
    _el(parent, "text", "NEXT", x=(x1 + x2) / 2 - 12, y=source.y + 0.75 * (apex - source.y) - 3, class_="jump-label")


def legend_items(statuses: dict[str, str]) -> list[tuple[str, str, str]]:
    """(fill, stroke, label) of each legend entry: step types, then the run's statuses."""
    items = [(TYPE_COLOURS[t], "#5f6368", t) for t in TYPE_COLOURS]
    counts = {s: list(statuses.values()).count(s) for s in STEP_STATUSES}
    items += [(STATUS_COLOURS[s], "#5f6368", f"{s} {counts[s]}") for s in STEP_STATUSES if counts[s]]
    return items + [("#ffffff", "#e37400", "continue if fail")]


def _legend_advance(label: str) -> float:
    return 14 + len(label) * 11 * CHAR_WIDTH + 16


def legend_width(statuses: dict[str, str]) -> float:
    return sum(_legend_advance(label) for _, _, label in legend_items(statuses))


def _legend(svg, x: float, y: float, statuses: dict[str, str]) -> None:
    legend = _el(svg, "g", class_="legend")
    for fill, stroke, label in legend_items(statuses):
        dashes = {"stroke_dasharray": "4 2"} if label == "continue if fail" else {}
        _el(legend, "rect", x=x, y=y - 9, width=10, height=10, fill=fill, stroke=stroke, **dashes)
        _el(legend, "text", label, x=x + 14, y=y, class_="legend")
        x += _legend_advance(label)


def picture_title(plan: Plan, run_id: Optional[str]) -> str:
    """The pipeline's name, and the run whose statuses colour the steps."""
    return f"{plan.name} \u00b7 run {run_id}" if run_id else plan.name


def render_svg(plan: Plan, statuses: Optional[dict[str, str]] = None, *, standalone: bool = True,
               run_id: Optional[str] = None) -> str:
    statuses = statuses or {}
    columns, width, height = layout(plan)
    width = max(width, 2 * MARGIN + legend_width(statuses))
    attrs = {"xmlns": "http://www.w3.org/2000/svg"} if standalone else {}
    svg = ET.Element("svg", {**attrs, "width": _num(width), "height": _num(height),
                             "viewBox": f"0 0 {width:g} {height:g}", "class": "levelflow-graph"})
    _el(svg, "title", f"{picture_title(plan, run_id)}: {plural(len(plan.levels), 'level')}, {plural(plan.step_count, 'step')}")
    _markers(svg)
    threads = sum(len(level.threads) for level in plan.levels)
    _text(svg, MARGIN, MARGIN + 18, picture_title(plan, run_id), fits(width - 2 * MARGIN, 18), "title")
    summary = " \u00b7 ".join([plan.engine, plural(len(plan.levels), "level"), plural(threads, "thread"), plural(plan.step_count, "step")])
    _el(svg, "text", summary, x=MARGIN, y=MARGIN + 36, class_="subtitle")
    _legend(svg, MARGIN, MARGIN + 56, statuses)
    for li, (level, column) in enumerate(zip(plan.levels, columns)):
        group = _el(svg, "g", class_="level", data_level_id=level.level_id)
        c = column.box
        _el(group, "rect", x=c.x, y=c.y, width=c.w, height=c.h, rx=8, class_="level-box")
        _text(group, c.x + COLUMN_PAD, c.y + 26, f"LEVEL {level.level_id} \u00b7 {plural(len(level.threads), 'thread')}",
              fits(c.w - 2 * COLUMN_PAD, 14), "level-label")
        for thread, lane, boxes in zip(level.threads, column.lanes, column.steps):
            _draw_thread(group, thread, lane, boxes, statuses)
        if li + 1 < len(columns):
            y = c.y + 20
            _el(svg, "path", d=f"M{c.x + c.w + 4:g},{y:g} H{columns[li + 1].box.x - 4:g}", class_="flow")
    ET.indent(svg, space=" ")
    return ET.tostring(svg, encoding="unicode") + "\n"


# ---------------------------------------------------------------- HTML

_PAGE_STYLE = """
html, body { margin: 0; height: 100%; font-family: system-ui, sans-serif; }
body { display: flex; flex-direction: column; }
header { padding: 6px 16px; background: #202124; color: #fff; font-size: 14px; display: flex; gap: 12px; align-items: center; }
header .hint { flex: 1; color: #bdc1c6; }
header button { font: inherit; font-size: 13px; padding: 2px 10px; border: 1px solid #5f6368; border-radius: 4px;
                background: #3c4043; color: #fff; cursor: pointer; }
main { flex: 1; position: relative; min-height: 0; }
#viewport { position: absolute; inset: 0; overflow: hidden; cursor: grab; background: #fff; }
#viewport svg { width: 100%; height: 100%; display: block; }
#details { position: absolute; top: 12px; right: 12px; max-width: min(420px, 45%); max-height: calc(100% - 24px);
           padding: 10px 12px; border: 1px solid #dadce0; border-radius: 6px; box-shadow: 0 2px 8px rgba(0,0,0,.2);
           white-space: pre-wrap; font: 12px ui-monospace, "DejaVu Sans Mono", monospace; overflow: auto;
           background: #f8f9fa; pointer-events: none; }
#details.left { right: auto; left: 12px; }
#details[hidden] { display: none; }
"""

# The view is an origin and a scale (drawing units per screen pixel). It opens fitted to the
# window and stays fitted when the window is resized, until the reader zooms or pans; "1:1"
# shows the drawing at its own size. The details of the hovered step float over the drawing,
# on the side away from the pointer, and only while a step is hovered.
_PAGE_SCRIPT = """
const svg = document.querySelector('#viewport svg');
const details = document.getElementById('details');
const drawing = {w: +svg.getAttribute('width'), h: +svg.getAttribute('height')};
let view = {x: 0, y: 0, k: 1}, fitted = true;
const show = () => {
  const r = svg.getBoundingClientRect();
  svg.setAttribute('viewBox', `${view.x} ${view.y} ${r.width * view.k} ${r.height * view.k}`);
  document.body.dataset.view = fitted ? 'fit' : view.k === 1 ? '1:1' : 'zoomed';
};
const fit = () => {  // the whole drawing, centred across, from the top
  const r = svg.getBoundingClientRect(), k = Math.max(drawing.w / Math.max(r.width, 1), drawing.h / Math.max(r.height, 1));
  view = {x: (drawing.w - r.width * k) / 2, y: 0, k};
  fitted = true; show();
};
const actualSize = () => {
  const r = svg.getBoundingClientRect(), c = {x: view.x + r.width * view.k / 2, y: view.y + r.height * view.k / 2};
  view = {x: c.x - r.width / 2, y: c.y - r.height / 2, k: 1};
  fitted = false; show();
};
const toSvg = (e) => {
  const r = svg.getBoundingClientRect();
  return {x: view.x + (e.clientX - r.left) * view.k, y: view.y + (e.clientY - r.top) * view.k};
};
svg.addEventListener('wheel', (e) => {
  e.preventDefault();
  const p = toSvg(e), f = e.deltaY > 0 ? 1.15 : 1 / 1.15;
  view = {x: p.x - (p.x - view.x) * f, y: p.y - (p.y - view.y) * f, k: view.k * f};
  fitted = false; show();
}, {passive: false});
let drag = null;
svg.addEventListener('pointerdown', (e) => { drag = toSvg(e); svg.setPointerCapture(e.pointerId); });
svg.addEventListener('pointermove', (e) => {
  if (!drag) return;
  const p = toSvg(e);
  view.x += drag.x - p.x; view.y += drag.y - p.y; fitted = false; show();
});
svg.addEventListener('pointerup', () => { drag = null; });
svg.addEventListener('mouseover', (e) => {
  const step = e.target.closest('.step');
  if (!step) { details.hidden = true; return; }
  details.textContent = step.querySelector('title').textContent;
  details.classList.toggle('left', e.clientX > svg.getBoundingClientRect().width * 0.55);
  details.hidden = false;
});
svg.addEventListener('mouseleave', () => { details.hidden = true; });
document.getElementById('fit').addEventListener('click', fit);
document.getElementById('actual-size').addEventListener('click', actualSize);
window.addEventListener('keydown', (e) => {
  if (e.key === 'f') fit();
  if (e.key === '1') actualSize();
});
window.addEventListener('resize', () => (fitted ? fit() : show()));
fit();
"""


def render_html(plan: Plan, statuses: Optional[dict[str, str]] = None, run_id: Optional[str] = None) -> str:
    title = html.escape(clean(picture_title(plan, run_id)))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title} \u2014 levelflow</title>\n<style>{_PAGE_STYLE}</style>\n</head>\n<body>\n"
        f"<header><strong>{title}</strong><span class=\"hint\">wheel to zoom, drag to pan, hover a step for its details</span>"
        "<button id=\"fit\" title=\"fit the whole pipeline in the window (f)\">Fit</button>"
        "<button id=\"actual-size\" title=\"show the drawing at its own size (1)\">1:1</button></header>\n"
        f"<main>\n<div id=\"viewport\">\n{render_svg(plan, statuses, standalone=False, run_id=run_id)}</div>\n"
        "<aside id=\"details\" hidden></aside>\n</main>\n"
        f"<script>{_PAGE_SCRIPT}</script>\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------- Mermaid

_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 _\-.,:/()\u00b7]")


def mermaid_text(text: str) -> str:
    """Label text for Mermaid: anything but plain characters becomes an entity code (#35;)."""
    return "".join(c if _MERMAID_SAFE.fullmatch(c) else f"#{ord(c)};" for c in clean(text))


def mermaid_label(text: str) -> str:
    return f'"{mermaid_text(text)}"'


def _label_lines(step: PlanStep, status: Optional[str]) -> list[str]:
    lines = [step.job_name, executor_text(step), timeout_text(step)]
    marks = ", ".join(m for m in (status, marks_text(step)) if m)
    return lines + [marks] if marks else lines


def render_mermaid(plan: Plan, statuses: Optional[dict[str, str]] = None, run_id: Optional[str] = None) -> str:
    statuses = statuses or {}
    ids = {step.job_id: f"s{i}" for i, step in enumerate(plan.steps())}
    # a run's picture says which run in Mermaid's front matter title (plain characters only)
    out = ["---", f"title: {mermaid_label(picture_title(plan, run_id))}", "---"] if run_id else []
    out.append("flowchart LR")
    classes: list[str] = []
    for li, level in enumerate(plan.levels):
        out.append(f"  subgraph L{li}[{mermaid_label(f'LEVEL {level.level_id}')}]")
        for ti, thread in enumerate(level.threads):
            out.append(f"    subgraph L{li}T{ti}[{mermaid_label(f'thread {thread.thread_id}')}]")
            out.append("      direction LR")
            for step in thread.steps:
                label = "<br/>".join(mermaid_text(line) for line in _label_lines(step, statuses.get(step.job_id)))
                out.append(f'      {ids[step.job_id]}["{label}"]')
            out.extend(f"      {edge}" for edge in _mermaid_edges(thread, ids))
            out.append("    end")
        out.append("  end")
        if li:
            out.append(f"  L{li - 1} --> L{li}")
    skipped = skipped_by_next(plan)
    for step in plan.steps():
        if step.continue_if_fail:
            classes.append(f"  class {ids[step.job_id]} continueIfFail")
        if step.job_id in skipped:
            classes.append(f"  class {ids[step.job_id]} skippedByNext")
        status = statuses.get(step.job_id)
        if status in STATUS_COLOURS:
            classes.append(f"  class {ids[step.job_id]} {status}")
    out.append("  classDef continueIfFail stroke:#e37400,stroke-width:2px,stroke-dasharray:6 3")
    out.append("  classDef skippedByNext opacity:0.55")
    out.extend(f"  classDef {s} fill:{STATUS_COLOURS[s]}" for s in STEP_STATUSES if s in statuses.values())
    return "\n".join(out + classes) + "\n"


def _mermaid_edges(thread: PlanThread, ids: dict[str, str]) -> list[str]:
    edges = []
    for step, following in zip(thread.steps, thread.steps[1:]):
        if step.next_job_id:
            edges.append(f"{ids[step.job_id]} -. NEXT .-> {ids[step.next_job_id]}")
        else:
            edges.append(f"{ids[step.job_id]} --> {ids[following.job_id]}")
    return edges


# ---------------------------------------------------------------- DOT (Graphviz)

def dot_string(text: str) -> str:
    return '"' + clean(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(plan: Plan, statuses: Optional[dict[str, str]] = None, run_id: Optional[str] = None) -> str:
    """Each level is a cluster of thread clusters; a small join node marks the wait between levels."""
    statuses, skipped = statuses or {}, skipped_by_next(plan)
    ids = {step.job_id: f"s{i}" for i, step in enumerate(plan.steps())}
    out = [f"digraph {dot_string(plan.name)} {{",
           '  graph [rankdir=LR, compound=true, fontname="Helvetica", label=' + dot_string(picture_title(plan, run_id))
           + ", labelloc=t];",
           '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize=10];']
    for li, level in enumerate(plan.levels):
        out.append(f"  subgraph cluster_L{li} {{")
        out.append(f"    label={dot_string(f'LEVEL {level.level_id}')}; style=filled; fillcolor=\"#f8f9fa\";")
        for ti, thread in enumerate(level.threads):
            out.append(f"    subgraph cluster_L{li}_T{ti} {{")
            out.append(f"      label={dot_string(f'thread {thread.thread_id}')}; fillcolor=\"#ffffff\";")
            for step in thread.steps:
                out.append(f"      {ids[step.job_id]} [{_dot_node_attrs(step, statuses.get(step.job_id), step.job_id in skipped)}];")
            for step, following in zip(thread.steps, thread.steps[1:]):
                if step.next_job_id:
                    out.append(f'      {ids[step.job_id]} -> {ids[step.next_job_id]} [style=dashed, color="#a142f4", label="NEXT"];')
                else:
                    out.append(f"      {ids[step.job_id]} -> {ids[following.job_id]};")
            out.append("    }")
        out.append("  }")
    for li in range(len(plan.levels) - 1):
        out.append(f'  join{li} [shape=circle, label="", width=0.15, fillcolor="#5f6368"];')
        out.extend(f"  {ids[t.steps[-1].job_id]} -> join{li};" for t in plan.levels[li].threads)
        out.extend(f"  join{li} -> {ids[t.steps[0].job_id]};" for t in plan.levels[li + 1].threads)
    return "\n".join(out + ["}"]) + "\n"


def _dot_node_attrs(step: PlanStep, status: Optional[str], skipped: bool) -> str:
    attrs = [f"label={dot_string(chr(10).join(_label_lines(step, status)))}",
             f"tooltip={dot_string(step_details(step, status))}"]
    if skipped:
        attrs.append('fontcolor="#80868b", color="#9aa0a6"')
    if status in STATUS_COLOURS:
        attrs.append(f'fillcolor="{STATUS_COLOURS[status]}"')
    if step.continue_if_fail:
        attrs.append('style="rounded,filled,dashed", color="#e37400", penwidth=2')
    return ", ".join(attrs)


# ---------------------------------------------------------------- entry point

RENDERERS: dict[str, Callable[..., str]] = {"svg": render_svg, "html": render_html, "mermaid": render_mermaid,
                                           "dot": render_dot}


def graph_format(output: str | Path) -> str:
    """The picture format named by an output file's suffix."""
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the picture format from {str(output)!r}: the file name must end with {', '.join(FORMATS)}")
    return FORMATS[suffix]


def render(plan: Plan, output_format: str, statuses: Optional[dict[str, str]] = None, run_id: Optional[str] = None) -> str:
    """The picture; `statuses` (of the run `run_id`) colour the steps, and the title names the run."""
    return RENDERERS[output_format](plan, statuses, run_id=run_id)
