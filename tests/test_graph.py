"""`levelflow graph`: every format parses, shows every step, and the SVG layout never overlaps."""
import json
import re
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from itertools import combinations
from pathlib import Path

import pydot
import pytest

import levelflow
from levelflow import graph as graphs
from levelflow.plan import STEP_STATUSES
from levelflow.plan import Plan, PlanLevel, PlanStep, PlanThread
from conftest import EXAMPLES, ROOT, pipeline, run_cli, step

# pydot's grammar still calls pyparsing's old camelCase names
pytestmark = pytest.mark.filterwarnings(r"ignore:'\w+' deprecated - use:DeprecationWarning")

RETAIL = EXAMPLES / "retail_daily.json"
SVG_NS = {"s": "http://www.w3.org/2000/svg"}


def retail_plan():
    return levelflow.load_plan(RETAIL)


def wide_pipeline(threads: int, steps_per_thread: int = 2, long_names: bool = False):
    """One level of `threads` threads, then a level with a single step."""
    def name(ti, si):
        base = f"t{ti}_s{si}"
        return (base + "_" + "n" * 120)[:128] if long_names else base

    first = [[step(f"J{ti}_{si}", JOB_NAME=name(ti, si)) for si in range(steps_per_thread)] for ti in range(threads)]
    data = pipeline([first, [[step("END", JOB_NAME="finish")]]])
    if long_names:
        for ti, thread in enumerate(data["definition"][0]["THREADS"]):
            thread["THREAD_ID"] = f"thread_{ti}_" + "t" * 100
    return data


def plan_of(data, tmp_path, name="pipe.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return levelflow.load_plan(path), path


def step_boxes(svg_text: str) -> dict[str, tuple[float, float, float, float]]:
    """JOB_ID -> (x, y, width, height) of its box, read back from the SVG."""
    root = ET.fromstring(svg_text)
    boxes = {}
    for group in root.iterfind(".//s:g[@class]", SVG_NS):
        if "step" in group.get("class").split():
            rect = group.find("s:rect[@class='step-box']", SVG_NS)
            boxes[group.get("data-job-id")] = tuple(float(rect.get(k)) for k in ("x", "y", "width", "height"))
    return boxes


def overlaps(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


# ---------------------------------------------------------------- SVG

@pytest.mark.parametrize("threads,long_names", [(1, False), (12, False), (100, False), (12, True), (100, True)])
def test_svg_boxes_never_overlap_and_stay_on_the_canvas(tmp_path, threads, long_names):
    plan, _ = plan_of(wide_pipeline(threads, 3, long_names), tmp_path)
    text = graphs.render_svg(plan)
    boxes = step_boxes(text)
    assert set(boxes) == {s.job_id for s in plan.steps()}
    for (ida, a), (idb, b) in combinations(boxes.items(), 2):
        assert not overlaps(a, b), f"{ida} overlaps {idb}"
    root = ET.fromstring(text)
    _, _, width, height = map(float, root.get("viewBox").split())
    for x, y, w, h in boxes.values():
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height


FONT_SIZES = {"title": 18, "level-label": 14, "name": 12, "subtitle": 12, "jump-label": 10}


def text_box(text: ET.Element) -> tuple[float, float, float, float]:
    """A label's extent: monospace advance per character, baseline at y."""
    size = FONT_SIZES.get(text.get("class"), 11)
    return float(text.get("x")), float(text.get("y")) - size, len(text.text) * size * graphs.CHAR_WIDTH, size


@pytest.mark.parametrize("threads,long_names", [(3, False), (100, True)])
def test_labels_stay_inside_their_box_and_off_the_others(tmp_path, threads, long_names):
    data = wide_pipeline(threads, 3, long_names)
    data["definition"][0]["THREADS"][0]["STEPS"][0]["NEXT"] = "J0_2"
    plan, _ = plan_of(data, tmp_path)
    text = graphs.render_svg(plan)
    root, boxes, inside = ET.fromstring(text), step_boxes(text), set()
    for group in root.iterfind(".//s:g[@data-job-id]", SVG_NS):
        x, y, w, h = boxes[group.get("data-job-id")]
        for text in group.iterfind("s:text", SVG_NS):
            tx, ty, tw, th = text_box(text)
            assert x < tx and tx + tw < x + w and y < ty and ty + th < y + h, text.text
            inside.add(id(text))
    for text in root.iter("{http://www.w3.org/2000/svg}text"):
        if id(text) not in inside:
            assert not any(overlaps(text_box(text), box) for box in boxes.values()), text.text


def test_every_label_fits_on_the_canvas_even_with_a_full_legend(tmp_path):
    plan, _ = plan_of(pipeline([[[step("J1")]]]), tmp_path)
    statuses = {"J1": "failed"}
    root = ET.fromstring(graphs.render_svg(plan, {**statuses, **{f"other{i}": s for i, s in enumerate(STEP_STATUSES)}}))
    _, _, width, _ = map(float, root.get("viewBox").split())
    for text in root.iter("{http://www.w3.org/2000/svg}text"):
        x, _, w, _ = text_box(text)
        assert x + w <= width, text.text


def test_svg_lanes_and_levels_do_not_overlap(tmp_path):
    plan, _ = plan_of(wide_pipeline(12, 2), tmp_path)
    root = ET.fromstring(graphs.render_svg(plan))
    for kind in ("level-box", "lane-box"):
        rects = [tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
                 for r in root.iterfind(f".//s:rect[@class='{kind}']", SVG_NS)]
        assert len(rects) == (2 if kind == "level-box" else 13)
        assert not any(overlaps(a, b) for a, b in combinations(rects, 2))


def test_long_names_are_cut_with_an_ellipsis_and_kept_whole_in_the_tooltip(tmp_path):
    plan, _ = plan_of(wide_pipeline(2, 1, long_names=True), tmp_path)
    root = ET.fromstring(graphs.render_svg(plan))
    for group in root.iterfind(".//s:g[@data-job-id]", SVG_NS):
        job = next(s for s in plan.steps() if s.job_id == group.get("data-job-id"))
        width = float(group.find("s:rect[@class='step-box']", SVG_NS).get("width"))
        assert group.find("s:title", SVG_NS).text.startswith(job.job_name)
        for text in group.iterfind("s:text", SVG_NS):
            size = 12 if text.get("class") == "name" else 11
            assert len(text.text) * size * graphs.CHAR_WIDTH <= width - 12, text.text
        shown = group.find("s:text[@class='name']", SVG_NS).text
        assert shown == job.job_name or (shown.endswith("\u2026") and job.job_name.startswith(shown[:-1]))
    assert any(t.text.endswith("\u2026") for t in root.iterfind(".//s:text[@class='name']", SVG_NS))
    lane_titles = [t.text for t in root.iterfind(".//s:g[@class='lane']/s:g/s:title", SVG_NS)]
    assert "thread thread_0_" + "t" * 100 in lane_titles


def test_svg_shows_every_step_with_its_name_type_executor_and_marks():
    plan = retail_plan()
    root = ET.fromstring(graphs.render_svg(plan))
    groups = {g.get("data-job-id"): g for g in root.iterfind(".//s:g[@data-job-id]", SVG_NS)}
    assert list(groups) == [s.job_id for s in plan.steps()]
    for job in plan.steps():
        texts = [t.text for t in groups[job.job_id].iterfind("s:text", SVG_NS)]
        assert texts[0] == job.job_name
        assert texts[1] == graphs.executor_text(job)
        assert texts[2].startswith(job.type)
        classes = groups[job.job_id].get("class").split()
        assert ("continue-if-fail" in classes) == job.continue_if_fail
        if job.continue_if_fail:
            assert "continue if fail" in texts[3]
    # the NEXT jump in conform_sales: an arc, and the step it skips is drawn as skipped
    assert len(root.findall(".//s:path[@class='jump']", SVG_NS)) == sum(1 for s in plan.steps() if s.next_job_id)
    assert "skipped-by-next" in groups["L2_sales_backfill"].get("class")
    assert "time-out 120 min" in "".join(t.text for t in groups["L2_sales_backfill"].iterfind("s:text", SVG_NS))


def test_text_from_a_plan_is_escaped_not_interpreted():
    """The API accepts any Plan; hostile strings must come out as inert text."""
    hostile = 'x"><script>alert(1)</script>&amp;\x01'
    job = PlanStep(job_id="J1", job_name=hostile, type="sync", executor="ex", status_executor=None,
                   workflow_id=None, wait_seconds=30, timeout_minutes=60, call_timeout_seconds=60,
                   continue_if_fail=False, step_properties={}, next_job_id=None, retries=0, estimated_minutes=None)
    plan = Plan(name=hostile, engine="cloud_workflows", description=None, schedule=None, notify=None,
                levels=(PlanLevel("1", (PlanThread(hostile, (job,)),)),))
    root = ET.fromstring(graphs.render_svg(plan))
    assert root.find(".//s:script", SVG_NS) is None
    assert hostile.replace("\x01", "") in [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")][-1]
    page = graphs.render_html(plan)
    assert page.count("<script>") == 1
    mermaid = graphs.render_mermaid(plan)
    assert "<script" not in mermaid
    check_mermaid_structure(mermaid, plan)  # every label stays one quoted string
    (graph,) = pydot.graph_from_dot_data(graphs.render_dot(plan))
    (cluster,) = graph.get_subgraphs()
    (thread,) = cluster.get_subgraphs()
    assert [n.get_name() for n in thread.get_nodes()] == ["s0"]  # the quote did not end the label
    assert thread.get_nodes()[0].get("label").startswith('"x\\">')


# ---------------------------------------------------------------- HTML

class _Structure(HTMLParser):
    """Records tag nesting errors and every attribute that could fetch something."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "path", "rect", "stop"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.urls, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.urls += [v for k, v in attrs if k in ("src", "href", "xlink:href") and v]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.urls += [v for k, v in attrs if k in ("src", "href", "xlink:href") and v]

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_html_page_is_well_formed_self_contained_and_shows_every_step():
    plan = retail_plan()
    page = graphs.render_html(plan)
    parser = _Structure()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert parser.urls == []
    assert not re.search(r"https?://|url\(\s*['\"]?(?!#)", page)
    job_ids = [a["data-job-id"] for tag, a in parser.tags if tag == "g" and "data-job-id" in a]
    assert job_ids == [s.job_id for s in plan.steps()]
    assert [tag for tag, _ in parser.tags].count("script") == 1


CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test.sh installs it)")


# Without the background-networking flags Chromium keeps trying Google's hosts, which this
# network refuses.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def chromium(tmp_path, url, *args):
    command = [CHROMIUM, "--headless", *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture
def browser_page():
    """A page of the real Chromium, driven by Playwright as a person would (pointer, wheel, clicks)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page
        finally:
            browser.close()


LAYOUT = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return {viewport: box(document.getElementById('viewport')), view: document.body.dataset.view,
          details: getComputedStyle(document.getElementById('details')).display,
          viewBox: svg.getAttribute('viewBox').split(' ').map(Number),
          lanes: Object.fromEntries([...document.querySelectorAll('.lane')].map((lane) => [lane.dataset.threadId, box(lane)]))};
}"""


@needs_chromium
@pytest.mark.parametrize("size", [(1200, 800), (900, 1000), (1600, 500)])
def test_the_html_page_opens_with_every_thread_on_screen(tmp_path, browser_page, size):
    """The screenshot of the page as it opens shows every thread of retail_daily, each lane
    inside the window; the details panel takes no room until a step is hovered."""
    from PIL import Image

    page_file = tmp_path / "retail.html"
    assert run_cli("graph", RETAIL, "-o", page_file).returncode == 0
    page = browser_page(viewport={"width": size[0], "height": size[1]})
    page.goto(page_file.as_uri())
    layout = page.evaluate(LAYOUT)
    threads = [t.thread_id for level in retail_plan().levels for t in level.threads]
    assert sorted(layout["lanes"]) == sorted(threads) and len(threads) == 18
    left, top, right, bottom = layout["viewport"]
    assert (left, right, bottom) == (0, size[0], size[1]) and 0 < top < 60  # below the header, the whole width
    assert layout["details"] == "none" and layout["view"] == "fit"
    png = tmp_path / "shot.png"
    page.screenshot(path=str(png))
    image = Image.open(png).convert("RGB")
    assert image.size == size
    for thread, (x0, y0, x1, y1) in layout["lanes"].items():
        assert left <= x0 < x1 <= right and top <= y0 < y1 <= bottom, f"thread {thread} is off screen: {(x0, y0, x1, y1)}"
        lane = image.crop((round(x0), round(y0), round(x1), round(y1)))
        inked = sum(count for count, rgb in lane.getcolors(maxcolors=1 << 20) if max(rgb) < 200)
        assert inked > 100, f"nothing drawn where thread {thread} should be"  # its label, step boxes and names


@needs_chromium
def test_the_page_fits_zooms_and_shows_details_only_while_a_step_is_hovered(tmp_path, browser_page):
    plan = retail_plan()
    page_file = tmp_path / "retail.html"
    page_file.write_text(graphs.render_html(plan))
    width, height = (float(v) for v in re.search(r'<svg width="([\d.]+)" height="([\d.]+)"', page_file.read_text()).groups())
    page = browser_page(viewport={"width": 1200, "height": 800})
    page.goto(page_file.as_uri())
    opened = page.evaluate(LAYOUT)
    box = opened["viewBox"]
    assert box[2] >= width - 0.5 and box[3] >= height - 0.5  # the whole drawing is in view
    assert min(box[2] / width, box[3] / height) < 1.01  # and no smaller than it needs to be

    first = plan.levels[0].threads[0].steps[0]
    step_box = page.locator(f'.step[data-job-id="{first.job_id}"] rect').first.bounding_box()
    page.mouse.move(step_box["x"] + 5, step_box["y"] + 5)
    details = page.locator("#details")
    assert details.is_visible() and details.inner_text().startswith(f"{first.job_name} (JOB_ID {first.job_id})")
    panel = details.bounding_box()
    assert panel["x"] > step_box["x"] + step_box["width"]  # on the side away from the pointer
    page.mouse.move(1190, 790)  # off every step
    assert not details.is_visible()

    page.mouse.move(300, 300)
    page.mouse.wheel(0, -100)
    zoomed = page.evaluate(LAYOUT)
    assert zoomed["view"] == "zoomed" and zoomed["viewBox"][2] < box[2]  # zoomed in around the pointer
    page.click("#actual-size")
    actual = page.evaluate(LAYOUT)
    assert actual["view"] == "1:1" and actual["viewBox"][2] == 1200  # one drawing unit per pixel
    page.set_viewport_size({"width": 1000, "height": 700})
    assert page.evaluate(LAYOUT)["view"] == "1:1"  # a chosen view survives a resize
    page.click("#fit")
    page.set_viewport_size({"width": 800, "height": 700})
    refit = page.evaluate(LAYOUT)
    assert refit["view"] == "fit" and refit["viewBox"][2] >= width - 0.5 and min(refit["viewBox"][2] / width, refit["viewBox"][3] / height) < 1.01
    page.keyboard.press("1")
    assert page.evaluate(LAYOUT)["view"] == "1:1"
    page.keyboard.press("f")
    assert page.evaluate(LAYOUT)["view"] == "fit"


# ---------------------------------------------------------------- Mermaid

def check_mermaid_structure(text: str, plan) -> None:
    """What GitHub's Mermaid needs: a flowchart, balanced subgraphs, quoted labels, known ids."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    depth, nodes, edges = 0, {}, []
    for line in lines[1:]:
        body = line.strip()
        if body.startswith("subgraph "):
            depth += 1
            assert re.fullmatch(r'subgraph L\d+(T\d+)?\["[^"]*"\]', body), body
        elif body == "end":
            depth -= 1
            assert depth >= 0
        elif match := re.fullmatch(r'(s\d+)\["([^"]*)"\]', body):
            assert match.group(1) not in nodes
            nodes[match.group(1)] = match.group(2)
        elif match := re.fullmatch(r"(\w+) (-->|-\. NEXT \.->) (\w+)", body):
            edges.append((match.group(1), match.group(3)))
        else:
            assert re.fullmatch(r"(direction LR|class s\d+ \w+|classDef \w+ [\w:#,. -]+)", body), body
    assert depth == 0
    assert len(nodes) == plan.step_count
    for a, b in edges:
        assert (a in nodes and b in nodes) or (a.startswith("L") and b.startswith("L"))
    for label, job in zip(nodes.values(), plan.steps()):
        assert label.split("<br/>")[0] == graphs.mermaid_text(job.job_name)
        assert not set(label.replace("<br/>", "")) & set('"[]{}|<>'), label


def test_mermaid_is_a_flowchart_with_every_step(tmp_path):
    out = tmp_path / "retail.mmd"
    assert run_cli("graph", RETAIL, "-o", out).returncode == 0
    plan = retail_plan()
    text = out.read_text()
    check_mermaid_structure(text, plan)
    assert text.count("-. NEXT .->") == 1
    skipped = [i for i, s in enumerate(plan.steps()) if s.job_id == "L2_sales_backfill"]
    assert [line.strip() for line in text.splitlines() if "class s" in line and "skippedByNext" in line] == [f"class s{skipped[0]} skippedByNext"]
    assert text.count("continueIfFail") == 1 + sum(s.continue_if_fail for s in plan.steps())


def test_mermaid_escapes_anything_but_plain_characters():
    assert graphs.mermaid_text('a"b<c>#[x]') == "a#34;b#60;c#62;#35;#91;x#93;"


MERMAID_JS = ROOT / ".cache" / "mermaid" / "mermaid.min.js"


@needs_chromium
@pytest.mark.skipif(not MERMAID_JS.is_file(), reason="mermaid.min.js not fetched (scripts/test.sh fetches it from npm)")
@pytest.mark.parametrize("source", ["retail", "100 threads, long names"])
def test_mermaid_renders_with_the_mermaid_library(tmp_path, source):
    """The real Mermaid parser and layout (as GitHub uses), run in headless Chromium."""
    plan = retail_plan() if source == "retail" else plan_of(wide_pipeline(100, 2, True), tmp_path)[0]
    text = graphs.render_mermaid(plan, {s.job_id: "succeeded" for s in plan.steps()})
    page = tmp_path / "mermaid.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><script src="{MERMAID_JS.as_uri()}"></script></head>'
        '<body><pre id="result">pending</pre><script>'
        f"const text = {json.dumps(text).replace('<', chr(92) + 'u003c')};"
        "mermaid.initialize({startOnLoad: false, securityLevel: 'strict', maxTextSize: 1000000, maxEdges: 5000});"
        "mermaid.render('graph', text).then("
        "  (r) => { document.getElementById('result').textContent = 'rendered ' + r.svg.length;"
        "           document.body.insertAdjacentHTML('beforeend', r.svg); },"
        "  (e) => { document.getElementById('result').textContent = 'error ' + (e && e.message || e); });"
        "</script></body></html>")
    dom = chromium(tmp_path, page.as_uri(), "--allow-file-access-from-files", "--virtual-time-budget=30000", "--dump-dom").stdout
    result = re.search(r'<pre id="result">([^<]*)', dom).group(1)
    assert result.startswith("rendered"), result
    for job in plan.steps():
        assert job.job_name[:20] in dom


# ---------------------------------------------------------------- DOT

def test_dot_parses_with_every_step_and_the_level_joins(tmp_path):
    out = tmp_path / "retail.dot"
    assert run_cli("graph", RETAIL, "-o", out).returncode == 0
    plan = retail_plan()
    (graph,) = pydot.graph_from_dot_file(str(out))
    nodes = {}
    for cluster in graph.get_subgraphs():
        for thread in cluster.get_subgraphs():
            nodes.update({n.get_name(): n for n in thread.get_nodes()})
    assert len(nodes) == plan.step_count
    labels = [nodes[f"s{i}"].get("label").strip('"').split("\\n")[0] for i in range(plan.step_count)]
    assert labels == [s.job_name for s in plan.steps()]
    faded = [name for name, node in nodes.items() if node.get("fontcolor")]
    assert faded == [f"s{i}" for i, s in enumerate(plan.steps()) if s.job_id == "L2_sales_backfill"]
    joins = [n.get_name() for n in graph.get_nodes() if n.get_name().startswith("join")]
    assert joins == [f"join{i}" for i in range(len(plan.levels) - 1)]
    top_edges = graph.get_edges()
    expected = sum(len(a.threads) + len(b.threads) for a, b in zip(plan.levels, plan.levels[1:]))
    assert len(top_edges) == expected


# ---------------------------------------------------------------- --run

def record_run(db: Path, run_id: str, statuses: dict[str, str]) -> None:
    """A state database shaped like the local engine's (table steps)."""
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS steps (run_id TEXT, job_id TEXT, status TEXT, started_at TEXT)")
        conn.executemany("INSERT INTO steps VALUES (?, ?, ?, '2026-01-01T00:00:00')",
                         [(run_id, job, status) for job, status in statuses.items()])


def test_run_colours_each_step_by_its_status(tmp_path):
    plan = retail_plan()
    jobs = [s.job_id for s in plan.steps()]
    statuses = {job: STEP_STATUSES[i % len(STEP_STATUSES)] for i, job in enumerate(jobs)}
    db = tmp_path / "state.db"
    record_run(db, "run-1", statuses)
    record_run(db, "run-2", {job: "failed" for job in jobs})
    out = tmp_path / "run.svg"
    result = run_cli("graph", RETAIL, "-o", out, "--run", "run-1", "--state", db)
    assert result.returncode == 0, result.stderr
    root = ET.parse(out).getroot()
    for group in root.iterfind(".//s:g[@data-job-id]", SVG_NS):
        status = statuses[group.get("data-job-id")]
        assert group.get("data-status") == status
        assert group.find("s:rect[@class='step-box']", SVG_NS).get("fill") == graphs.STATUS_COLOURS[status]
    legend = " ".join(t.text for t in root.iterfind(".//s:text[@class='legend']", SVG_NS))
    assert f"succeeded {list(statuses.values()).count('succeeded')}" in legend
    mermaid = tmp_path / "run.mmd"
    assert run_cli("graph", RETAIL, "-o", mermaid, "--run", "run-2", "--state", db).returncode == 0
    assert mermaid.read_text().count(" failed\n") == len(jobs)


def test_run_recorded_by_the_local_engine_is_drawn_with_its_statuses(tmp_path):
    """The contract end to end: `levelflow run` records, `levelflow graph --run` reads."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("jobs:\n  quality_check_campaigns: {outcome: fail}\n  build_sales_marts: {outcome: fail}\n")
    db = tmp_path / "runs.db"
    ran = run_cli("run", RETAIL, "--params", EXAMPLES / "platform-parameters-dev.json", "--time-scale", "0.001",
                  "--state", db, "--format", "json", f"--simulate={scenario}")
    result = json.loads(ran.stdout)
    recorded = {s["job_id"]: s["status"] for s in result["steps"]}
    assert {"failed", "continued", "skipped", "succeeded"} <= set(recorded.values())
    out = tmp_path / "run.svg"
    drawn = run_cli("graph", RETAIL, "-o", out, "--run", result["run_id"], "--state", db)
    assert drawn.returncode == 0, drawn.stderr
    root = ET.parse(out).getroot()
    assert {g.get("data-job-id"): g.get("data-status") for g in root.iterfind(".//s:g[@data-job-id]", SVG_NS)} == recorded
    reported = run_cli("graph", RETAIL, "-o", tmp_path / "run.html", "--run", result["run_id"], "--state", db, "--format", "json")
    assert reported.returncode == 0 and reported.stderr == ""
    assert json.loads(reported.stdout) == {
        "file": str(tmp_path / "run.html"), "format": "html", "pipeline": "retail-daily", "levels": 4, "threads": 18, "steps": 36,
        "run_id": result["run_id"], "statuses": {s: list(recorded.values()).count(s) for s in dict.fromkeys(recorded.values())}}


def test_load_run_statuses_keeps_the_last_row_of_a_retried_step(tmp_path):
    db = tmp_path / "state.db"
    record_run(db, "r", {"J1": "failed"})
    record_run(db, "r", {"J1": "succeeded", "J2": "running"})
    assert graphs.load_run_statuses(db, "r") == {"J1": "succeeded", "J2": "running"}


@pytest.mark.parametrize("setup,message", [
    ("missing", "state database not found"),
    ("no table", "cannot read the run's steps"),
    ("other run", "no run 'wanted' in this state database; runs recorded: other"),
])
def test_run_problems_exit_1_and_write_nothing(tmp_path, setup, message):
    db = tmp_path / "state.db"
    if setup == "no table":
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE runs (run_id TEXT)")
    elif setup == "other run":
        record_run(db, "other", {"L1_customers_ingest": "succeeded"})
    out = tmp_path / "run.svg"
    result = run_cli("graph", RETAIL, "-o", out, "--run", "wanted", "--state", db)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


# ---------------------------------------------------------------- command line

@pytest.mark.parametrize("suffix", [".svg", ".html", ".mmd", ".dot"])
def test_output_is_byte_identical_on_rerun(tmp_path, suffix):
    first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    assert run_cli("graph", RETAIL, "-o", first).returncode == 0
    assert run_cli("graph", RETAIL, "-o", second, "--params", EXAMPLES / "platform-parameters-dev.json").returncode == 0
    assert first.read_bytes() == second.read_bytes()


def test_unknown_suffix_is_a_usage_error(tmp_path):
    result = run_cli("graph", RETAIL, "-o", tmp_path / "out.png")
    assert result.returncode == 2
    assert ".svg, .html, .mmd, .dot" in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_invalid_definition_leaves_an_earlier_picture_unchanged(tmp_path):
    out = tmp_path / "pipe.svg"
    out.write_text("earlier")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(pipeline([[[step("J1", WAIT_TIME_SECONDS="abc")]]])))
    result = run_cli("graph", bad, "-o", out)
    assert result.returncode == 1
    assert "WAIT_TIME_SECONDS" in result.stderr and "Traceback" not in result.stderr
    assert out.read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "pipe.svg"]  # no temporary file left


def test_run_without_state_reads_the_local_engines_default_database(tmp_path):
    result = run_cli("graph", RETAIL, "-o", tmp_path / "x.svg", "--run", "r1", env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(tmp_path / "data") in result.stderr and "state database not found" in result.stderr
    assert not (tmp_path / "x.svg").exists()


def test_state_without_run_is_a_usage_error(tmp_path):
    result = run_cli("graph", RETAIL, "-o", tmp_path / "x.svg", "--state", tmp_path / "state.db")
    assert result.returncode == 2 and "--run" in result.stderr
    assert not (tmp_path / "x.svg").exists()


def test_graph_help_explains_the_formats():
    result = run_cli("graph", "--help")
    assert result.returncode == 0
    for word in (".svg", ".html", ".mmd", ".dot", "--run", "--state"):
        assert word in result.stdout


def test_committed_readme_picture_is_up_to_date():
    committed = ROOT / "docs" / "retail_daily.svg"
    assert committed.read_text() == graphs.render_svg(retail_plan()), (
        "regenerate it: levelflow graph examples/retail_daily.json -o docs/retail_daily.svg")
    assert "docs/retail_daily.svg" in (ROOT / "README.md").read_text()


def test_a_run_of_another_pipeline_is_refused_and_a_run_picture_names_its_run(tmp_path):
    """`graph A --run <a run of B>` is an error (exit 1, nothing written), whether the record
    names B or only holds other steps; a run's picture names the run in its title, in every format."""
    demo = EXAMPLES / "demo_pipeline_cloud_workflows.json"
    db = tmp_path / "runs.db"
    ran = run_cli("run", demo, "--params", EXAMPLES / "platform-parameters-dev.json", "--state", db, "--simulate",
                  "--format", "json")
    run_id = json.loads(ran.stdout)["run_id"]
    out = tmp_path / "retail.svg"
    refused = run_cli("graph", RETAIL, "-o", out, "--run", run_id, "--state", db)
    assert refused.returncode == 1 and not out.exists() and "Traceback" not in refused.stderr
    assert f"run {run_id} is a run of pipeline 'demo_pipeline_cloud_workflows', not of 'retail-daily'" in refused.stderr
    only_steps = tmp_path / "steps-only.db"
    record_run(only_steps, "r9", {"J1": "succeeded"})
    other = run_cli("graph", RETAIL, "-o", out, "--run", "r9", "--state", only_steps)
    assert other.returncode == 1 and "run r9 did not run this definition's steps (0 of its 36" in other.stderr
    for suffix in (".svg", ".html", ".mmd", ".dot"):
        picture = tmp_path / f"demo{suffix}"
        assert run_cli("graph", demo, "-o", picture, "--run", run_id, "--state", db).returncode == 0
        assert f"run {run_id}" in picture.read_text(), suffix
