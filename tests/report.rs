//! `--report FILE.html`: the page a run leaves, loaded in headless Chromium with networking off, its
//! lanes measured as the browser lays them out and held against the simulator's own records. What the
//! page says is checked with or without a browser; only the layout needs Chromium.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use neumann_script::report::page::esc;
use neumann_script::sim::SimConfig;
use serde_json::Value;

use crate::support::{
    binary_or_skip, expect, poll_until, signal, try_poll_until, Cluster, Running, CHROMIUM,
};

/// Measures what the browser drew: the page is copied with a script that writes the boxes of the
/// timeline, its lanes and their segments, its labels (each with its bar), its axes, the failed-writes
/// caption and bars, the health waits and the per-node table into `<pre id="layout">`, which
/// `--dump-dom` prints. The report itself carries no script; this one is the test's.
const MEASURE: &str = r#"<script>
(function () {
  function box(el) { var r = el.getBoundingClientRect(); return [r.x + window.scrollX, r.y + window.scrollY, r.width, r.height]; }
  function all(sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); }
  var svg = document.getElementById('timeline');
  var caption = document.getElementById('caption');
  var out = {
    window: [window.innerWidth, window.innerHeight],
    page: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
    svg: svg ? box(svg) : null,
    predicted: !!document.getElementById('predicted'),
    steps: document.querySelectorAll('#steps tr.step-row').length,
    labels: all('text.label').map(function (t) {
      var bar = document.getElementById(t.getAttribute('data-for'));
      return { text: t.textContent, for: t.getAttribute('data-for'), inside: t.classList.contains('in'), box: box(t), bar: bar ? box(bar) : null };
    }),
    step_bars: all('#steps-row rect').map(function (r) { return r.id; }),
    axes: all('g.axis').map(box),
    caption: caption ? box(caption) : null,
    bars: all('#failed-writes rect.bar').map(box),
    waits: all('rect.wait').map(box),
    nodes: all('#nodes tr.node-row').map(function (r) { return box(r); }),
    lanes: all('g.lane').map(function (g) {
      return {
        node: g.getAttribute('data-node'),
        box: box(g),
        segs: all('g.lane[data-node="' + g.getAttribute('data-node') + '"] rect.seg').map(function (s) {
          return { state: s.getAttribute('data-state'), box: box(s), fill: getComputedStyle(s).fill };
        })
      };
    })
  };
  var pre = document.createElement('pre');
  pre.id = 'layout';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"#;

/// Loads `html` in headless Chromium with networking disabled and returns the measured layout.
fn layout(browser: &Path, html: &str) -> Value {
    layout_at(browser, html, (1200, 900))
}

/// `layout` in a window of this size.
fn layout_at(browser: &Path, html: &str, (width, height): (u32, u32)) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    let measured = match html.rfind("</body>") {
        Some(i) => format!("{}{MEASURE}{}", &html[..i], &html[i..]),
        None => format!("{html}{MEASURE}"),
    };
    std::fs::write(&page, measured).unwrap();
    // stdout to a file, so a large page cannot fill a pipe nobody reads while the test waits with a limit.
    let dumped = dir.path().join("dom.html");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(std::fs::File::create(&dumped).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    // Generous: a loaded 2-core machine starts a browser slowly, but a hung one must not hang the suite.
    let done = try_poll_until("chromium to finish", Duration::from_secs(180), || {
        child.try_wait().unwrap().is_some()
    });
    if let Err(e) = done {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{e}");
    }
    let dom = std::fs::read_to_string(&dumped).unwrap();
    let chromium_said = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
    let start = dom.find("<pre id=\"layout\">").unwrap_or_else(|| {
        panic!(
            "no layout in the dumped page; chromium said:\n{}",
            chromium_said
        )
    }) + "<pre id=\"layout\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    serde_json::from_str(&unescape(&dom[start..end])).unwrap()
}

/// HTML text back to what it says.
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn boxed(v: &Value) -> [f64; 4] {
    let a = v.as_array().unwrap();
    [0, 1, 2, 3].map(|i| a[i].as_f64().unwrap())
}

/// What a reader must see: one lane per node, each with as many visible `down` segments as the
/// simulator logged stops for it, the lanes apart from each other and inside the page, and the steps.
fn check_lanes(layout: &Value, downs: &BTreeMap<String, usize>) -> Result<(), String> {
    let lanes = layout["lanes"].as_array().ok_or("no lanes measured")?;
    let names: Vec<&str> = lanes.iter().filter_map(|l| l["node"].as_str()).collect();
    let want: Vec<&str> = downs.keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    if sorted != want {
        return Err(format!("lanes {names:?}, nodes {want:?}"));
    }
    let [_, _, page_w, page_h] = [
        0.0,
        0.0,
        layout["page"][0].as_f64().unwrap(),
        layout["page"][1].as_f64().unwrap(),
    ];
    let mut up_fill = None;
    let mut boxes = Vec::new();
    for l in lanes {
        let node = l["node"].as_str().unwrap();
        let b = boxed(&l["box"]);
        if b[0] < 0.0 || b[1] < 0.0 || b[0] + b[2] > page_w + 0.5 || b[1] + b[3] > page_h + 0.5 {
            return Err(format!(
                "{node}: lane {b:?} outside the page {page_w}x{page_h}"
            ));
        }
        let segs = l["segs"].as_array().unwrap();
        let mut down = 0;
        for s in segs {
            let sb = boxed(&s["box"]);
            let state = s["state"].as_str().unwrap();
            let fill = s["fill"].as_str().unwrap_or("none").to_string();
            if sb[2] < 1.0 || sb[3] < 1.0 || fill == "none" || fill.ends_with(", 0)") {
                return Err(format!(
                    "{node}: {state} segment {sb:?} fill {fill} is not visible"
                ));
            }
            if sb[0] + 0.5 < b[0] || sb[0] + sb[2] > b[0] + b[2] + 0.5 {
                return Err(format!(
                    "{node}: {state} segment {sb:?} outside its lane {b:?}"
                ));
            }
            match state {
                "down" => {
                    down += 1;
                    if up_fill.as_deref() == Some(fill.as_str()) {
                        return Err(format!(
                            "{node}: down is drawn in the colour of up ({fill})"
                        ));
                    }
                }
                "up" => up_fill = Some(fill),
                _ => {}
            }
        }
        if down != downs[node] {
            return Err(format!(
                "{node}: {down} down segments drawn, the simulator logged {} stops",
                downs[node]
            ));
        }
        boxes.push((node.to_string(), b));
    }
    boxes.sort_by(|a, b| a.1[1].total_cmp(&b.1[1]));
    for w in boxes.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.1[1] + a.1[3] > b.1[1] + 0.5 {
            return Err(format!(
                "lanes {} {:?} and {} {:?} overlap",
                a.0, a.1, b.0, b.1
            ));
        }
    }
    if layout["steps"].as_u64().unwrap_or(0) == 0 {
        return Err("no steps listed".into());
    }
    Ok(())
}

fn boxes(v: &Value) -> Vec<[f64; 4]> {
    v.as_array()
        .map_or(Vec::new(), |a| a.iter().map(boxed).collect())
}

/// Whether two boxes share more than a hair's breadth.
fn intersect(a: [f64; 4], b: [f64; 4]) -> bool {
    const HAIR: f64 = 0.5;
    a[0] + a[2] > b[0] + HAIR
        && b[0] + b[2] > a[0] + HAIR
        && a[1] + a[3] > b[1] + HAIR
        && b[1] + b[3] > a[1] + HAIR
}

fn within(inner: [f64; 4], outer: [f64; 4]) -> bool {
    const HAIR: f64 = 0.5;
    inner[0] + HAIR >= outer[0]
        && inner[1] + HAIR >= outer[1]
        && inner[0] + inner[2] <= outer[0] + outer[2] + HAIR
        && inner[1] + inner[3] <= outer[1] + outer[3] + HAIR
}

/// Every label is read whole: one drawn inside its bar lies inside the bar's box, and no two labels cover
/// each other (so one beside its bar overlaps no other). Returns how many there are.
fn check_labels(layout: &Value) -> Result<usize, String> {
    let labels = layout["labels"].as_array().ok_or("no labels measured")?;
    for l in labels {
        let b = boxed(&l["box"]);
        let text = l["text"].as_str().unwrap_or_default();
        if b[2] < 1.0 || b[3] < 1.0 {
            return Err(format!("label {text:?} {b:?} is not visible"));
        }
        if l["inside"] == true {
            let bar = l["bar"].as_array().map(|_| boxed(&l["bar"]));
            match bar {
                Some(bar) if within(b, bar) => {}
                other => return Err(format!("label {text:?} {b:?} is outside its bar {other:?}")),
            }
        }
    }
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            if intersect(boxed(&a["box"]), boxed(&b["box"])) {
                return Err(format!(
                    "labels {} {:?} and {} {:?} overlap",
                    a["text"], a["box"], b["text"], b["box"]
                ));
            }
        }
    }
    Ok(labels.len())
}

/// Wherever the window is scrolled over the timeline, a whole time axis is in view: at the top, on the
/// way down, and within the last screen height of it.
fn check_axes(layout: &Value) -> Result<(), String> {
    let screen = layout["window"][1].as_f64().ok_or("no window measured")?;
    let svg = boxed(&layout["svg"]);
    let (top, bottom) = (svg[1], svg[1] + svg[3]);
    let axes = boxes(&layout["axes"]);
    let in_view = |y: f64| {
        axes.iter()
            .any(|a| a[3] > 0.0 && a[1] >= y - 0.5 && a[1] + a[3] <= y + screen + 0.5)
    };
    let last = (bottom - screen).max(top);
    let mut y = top;
    loop {
        if !in_view(y) {
            return Err(format!(
                "no time axis in view with the window at {y:.0} px ({screen} px high) over the timeline from {top:.0} to {bottom:.0}; axes at {:?}",
                axes.iter().map(|a| a[1].round()).collect::<Vec<_>>()
            ));
        }
        if y >= last {
            return Ok(());
        }
        y = (y + 10.0).min(last);
    }
}

/// No bar of the failed-writes chart is drawn over its caption.
fn check_caption(layout: &Value) -> Result<(), String> {
    if layout["caption"].is_null() {
        return match boxes(&layout["bars"]).is_empty() {
            true => Ok(()),
            false => Err("failed writes drawn without their caption".into()),
        };
    }
    let caption = boxed(&layout["caption"]);
    for bar in boxes(&layout["bars"]) {
        if intersect(caption, bar) {
            return Err(format!("a bar {bar:?} covers the caption {caption:?}"));
        }
    }
    Ok(())
}

/// The timeline takes the window's width: nothing scrolls sideways, and the plot reaches the right margin.
fn check_width(layout: &Value) -> Result<(), String> {
    let window = layout["window"][0].as_f64().ok_or("no window measured")?;
    let page = layout["page"][0].as_f64().unwrap_or_default();
    let svg = boxed(&layout["svg"]);
    if page > window + 1.0 {
        return Err(format!(
            "the page is {page} px wide in a {window} px window"
        ));
    }
    if svg[0] + svg[2] < window - 60.0 {
        return Err(format!(
            "the timeline ends at {} px in a {window} px window",
            svg[0] + svg[2]
        ));
    }
    Ok(())
}

/// The opening tags of the page's elements that contain `needle`.
fn tags<'a>(page: &'a str, needle: &str) -> Vec<&'a str> {
    page.match_indices(needle)
        .filter_map(|(i, _)| {
            let open = page[..i].rfind('<')?;
            let close = i + page[i..].find('>')?;
            Some(&page[open..=close])
        })
        .collect()
}

/// An attribute's value in an opening tag.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

fn attr_f64(tag: &str, name: &str) -> f64 {
    attr(tag, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {name} in {tag}"))
}

/// A node's segments of one state as (from, to), in the page's seconds.
fn segments(page: &str, node: &str, state: &str) -> Vec<(f64, f64)> {
    // A lane's group holds no other group: it ends at the first `</g>`.
    let lane = &page[page
        .find(&format!("<g class=\"lane\" data-node=\"{node}\">"))
        .unwrap_or_else(|| panic!("no lane for {node}"))..];
    let lane = &lane[..lane.find("</g>").unwrap_or(lane.len())];
    tags(lane, &format!("data-state=\"{state}\""))
        .into_iter()
        .map(|t| (attr_f64(t, "data-t0"), attr_f64(t, "data-t1")))
        .collect()
}

/// The cells of the per-node table's rows, as text.
fn node_rows(page: &str) -> Vec<Vec<String>> {
    page.split("<tr class=\"node-row\"")
        .skip(1)
        .map(|row| {
            let row = &row[..row.find("</tr>").unwrap_or(row.len())];
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let cell = &cell[cell.find('>').map_or(0, |i| i + 1)..];
                    unescape(&cell[..cell.find("</td>").unwrap_or(cell.len())])
                })
                .collect()
        })
        .collect()
}

/// Seconds as the page writes them (`0.6 s`, `3 min 05 s`), and how far that may be from the figure it
/// rounds: a twentieth of a second, or half a second past a minute.
fn page_secs(s: &str) -> (f64, f64) {
    let words: Vec<&str> = s.split_whitespace().collect();
    match words.as_slice() {
        [n, "s"] => (n.parse().unwrap(), 0.05),
        [m, "min", n, "s"] => (
            m.parse::<f64>().unwrap() * 60.0 + n.parse::<f64>().unwrap(),
            0.5,
        ),
        _ => panic!("not a duration: {s:?}"),
    }
}

/// The per-node table against the simulator's log: one row per node, in inventory order, with the version
/// it ran before and runs after, how many times it went down and for how long (as the page rounds it).
fn check_nodes(page: &str, c: &Cluster, nodes: usize, from: &str) -> Result<(), String> {
    let rows = node_rows(page);
    if rows.len() != nodes {
        return Err(format!(
            "{} rows in the node table, {nodes} nodes",
            rows.len()
        ));
    }
    let events = c.events();
    for (i, row) in rows.iter().enumerate() {
        let node = format!("node{}", i + 1);
        if row[0] != node {
            return Err(format!("row {i} is {:?}, expected {node}", row[0]));
        }
        let mine: Vec<_> = events
            .iter()
            .filter(|e| e.node.as_deref() == Some(&node))
            .collect();
        let now = mine
            .iter()
            .rev()
            .find(|e| e.kind == "rejoined")
            .and_then(|e| e.detail.split_whitespace().last())
            .unwrap_or(from);
        let want = if now == from {
            format!("{from} (unchanged)")
        } else {
            format!("{from} → {now}")
        };
        if row[1] != want {
            return Err(format!(
                "{node}: version {:?}, the simulator says {want:?}",
                row[1]
            ));
        }
        let mut down = 0.0;
        let mut times = 0;
        let mut since = None;
        for e in &mine {
            match e.kind.as_str() {
                "stop" | "crash" => {
                    times += 1;
                    since = Some(e.t);
                }
                "start" => down += since.take().map_or(0.0, |s| e.t - s),
                _ => {}
            }
        }
        if row[2] != times.to_string() {
            return Err(format!(
                "{node}: down {} times, the simulator logged {times}",
                row[2]
            ));
        }
        let (shown, rounding) = page_secs(&row[3]);
        if (shown - down).abs() > rounding + 0.01 {
            return Err(format!(
                "{node}: down for {}, the simulator logged {down:.2} s",
                row[3]
            ));
        }
    }
    Ok(())
}

/// The page with the elements from `open` to the next `close` removed, but for the first `keep` of them.
fn without_all(page: &str, open: &str, close: &str, keep: usize) -> String {
    let mut out = String::new();
    let mut rest = page;
    let mut seen = 0;
    while let Some(i) = rest.find(open) {
        let end = i + rest[i..].find(close).unwrap() + close.len();
        out.push_str(&rest[..i]);
        if seen < keep {
            out.push_str(&rest[i..end]);
        }
        seen += 1;
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Every step has its label: its name, shortened or its number, in or beside its bar.
fn check_step_labels(layout: &Value) -> Result<(), String> {
    let labelled: Vec<&str> = layout["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["for"].as_str())
        .collect();
    let bars = layout["step_bars"].as_array().ok_or("no steps measured")?;
    let missing: Vec<&str> = bars
        .iter()
        .filter_map(|b| b.as_str())
        .filter(|b| !labelled.contains(b))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("steps without a label: {missing:?}"))
    }
}

/// Every layout check of a page at any size, as the errors they found.
fn layout_errors(layout: &Value, downs: &BTreeMap<String, usize>) -> Vec<String> {
    [
        check_lanes(layout, downs),
        check_labels(layout).map(|_| ()),
        check_step_labels(layout),
        check_axes(layout),
        check_caption(layout),
        check_width(layout),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect()
}

/// Stops per node as the simulator logged them during the run (every node of the cluster listed).
fn stops(c: &Cluster, nodes: &[&str]) -> BTreeMap<String, usize> {
    let mut m: BTreeMap<String, usize> = nodes.iter().map(|n| (n.to_string(), 0)).collect();
    for (_, node) in c.events_of(&["stop", "crash"]) {
        *m.entry(node).or_default() += 1;
    }
    m
}

fn assert_self_contained(page: &str) {
    for banned in ["<script", "src=", "href=", "url(", "@import"] {
        assert!(!page.contains(banned), "the report contains {banned}");
    }
}

/// Removes the lane of `node` from the page (its `<g class="lane">` element and everything in it).
fn without_lane(page: &str, node: &str) -> String {
    let open = format!("<g class=\"lane\" data-node=\"{node}\">");
    let start = page.find(&open).unwrap();
    let mut depth = 0;
    let mut i = start;
    loop {
        let next_open = page[i..].find("<g").map(|k| i + k);
        let next_close = page[i..].find("</g>").map(|k| i + k).unwrap();
        match next_open {
            Some(o) if o < next_close => {
                depth += 1;
                i = o + 2;
            }
            _ => {
                depth -= 1;
                i = next_close + 4;
                if depth == 0 {
                    break;
                }
            }
        }
    }
    format!("{}{}", &page[..start], &page[i..])
}

#[test]
fn a_rolling_upgrade_report_shows_every_nodes_outage_as_the_simulator_logged_it() {
    let c = Cluster::start(3, "0.10.4");
    let path = c.dir.path().join("out.html");
    let out = c.run(&[
        "--yes",
        "--report",
        path.to_str().unwrap(),
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    let (_, err) = expect(&out, 0);
    let line = format!("report: {}", path.display());
    assert_eq!(err.matches(&line).count(), 1, "one line says where:\n{err}");
    let page = std::fs::read_to_string(&path).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("done (exit 0)"));
    assert!(page.contains("id=\"invariants\"") && page.contains("lost_committed_writes"));

    let downs = stops(&c, &["node1", "node2", "node3"]);
    assert!(downs.values().all(|&n| n == 1), "{downs:?}");
    check_nodes(&page, &c, 3, "0.10.4").unwrap();
    // The table's check fires: a row missing, a version or a down time the simulator did not log.
    let row = |page: &str| node_rows(page)[1].clone();
    let broken = [
        (
            without_all(
                &page,
                "<tr class=\"node-row\" data-node=\"node2\"",
                "</tr>",
                0,
            ),
            "2 rows",
        ),
        (
            page.replacen("0.10.4 → 0.11.0", "0.10.4 → 0.10.5", 1),
            "version",
        ),
        (
            page.replacen(
                &format!("<td class=\"num\">{}</td>", row(&page)[3]),
                "<td class=\"num\">9.9 s</td>",
                1,
            ),
            "down for",
        ),
    ];
    for (html, want) in broken {
        let e = check_nodes(&html, &c, 3, "0.10.4").expect_err(want);
        assert!(e.contains(want), "{want}: {e}");
    }

    let Some(browser) = binary_or_skip(
        "report::a_rolling_upgrade_report_shows_every_nodes_outage_as_the_simulator_logged_it: the layout",
        &CHROMIUM,
    ) else {
        return;
    };
    let measured = layout(&browser, &page);
    assert_eq!(layout_errors(&measured, &downs), Vec::<String>::new());

    // The check fires: a page missing a lane, a lane's outage, or its steps; lanes drawn over each other
    // or off the page; an outage drawn in the colour of a healthy node.
    let broken = [
        ("a lane removed", without_lane(&page, "node2"), "lanes"),
        (
            "a down segment removed",
            page.replacen("data-state=\"down\"", "data-state=\"gone\"", 1),
            "down segments drawn",
        ),
        (
            "lanes on top of each other",
            page.replace(
                "<g class=\"lane\" data-node=\"node2\">",
                "<g class=\"lane\" data-node=\"node2\" transform=\"translate(0,-12)\">",
            ),
            "overlap",
        ),
        (
            "a lane off the page",
            page.replace(
                "<g class=\"lane\" data-node=\"node3\">",
                "<g class=\"lane\" data-node=\"node3\" transform=\"translate(-400,0)\">",
            ),
            "outside the page",
        ),
        (
            "down in the colour of up",
            page.replace(".down { fill: #d64545; }", ".down { fill: #cfe9d6; }"),
            "colour of up",
        ),
        (
            "no steps",
            page.replace("class=\"step-row\"", "class=\"x\""),
            "no steps",
        ),
    ];
    for (what, html, want) in broken {
        let e = check_lanes(&layout(&browser, &html), &downs).expect_err(what);
        assert!(e.contains(want), "{what}: {e}");
    }
}

#[test]
fn a_rehearsal_report_is_the_predicted_timeline_of_the_twin() {
    let c = Cluster::start(3, "0.10.4");
    let path = c.dir.path().join("predicted.html");
    let out = c.run(&[
        "--rehearse",
        "--report",
        path.to_str().unwrap(),
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    let (said, err) = expect(&out, 0);
    assert!(err.contains("(the predicted timeline)"), "{err}");
    assert!(
        c.events_of(&["stop", "drain", "install"]).is_empty(),
        "the live cluster was touched"
    );
    let page = std::fs::read_to_string(&path).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("<title>Predicted: "));
    check_rehearsal(&page, &said).unwrap();
    // The check fires: another figure, a line of the plan missing.
    let figure = said
        .lines()
        .find_map(|l| l.strip_prefix("predicted duration: "))
        .unwrap();
    let line = said.lines().find(|l| l.contains(". node::stop")).unwrap();
    let broken = [
        (
            page.replacen(&esc(figure), "1 h 0 min 0 s (from a guess)", 1),
            "predicted duration",
        ),
        (page.replacen(&esc(line), "", 1), "plan"),
    ];
    for (html, want) in broken {
        let e = check_rehearsal(&html, &said).expect_err(want);
        assert!(e.contains(want), "{want}: {e}");
    }

    let Some(browser) = binary_or_skip(
        "report::a_rehearsal_report_is_the_predicted_timeline_of_the_twin: the layout",
        &CHROMIUM,
    ) else {
        return;
    };
    let measured = layout(&browser, &page);
    assert_eq!(measured["predicted"], true);
    // The twin restarts every node once; its log is gone with it, so one outage each is the record.
    let downs: BTreeMap<String, usize> = ["node1", "node2", "node3"]
        .iter()
        .map(|n| (n.to_string(), 1))
        .collect();
    check_lanes(&measured, &downs).unwrap();
    let plain = page.replace("id=\"predicted\"", "id=\"x\"");
    assert_eq!(layout(&browser, &plain)["predicted"], false);
}

#[test]
fn the_report_is_written_however_the_run_ends() {
    let c = Cluster::start(3, "0.10.4");
    let dir = c.dir.path();
    // A script error.
    let p = dir.join("error.html");
    let out = c.run(&["--report", p.to_str().unwrap(), "-e", "fail(\"boom <b>\")"]);
    expect(&out, 1);
    let page = std::fs::read_to_string(&p).unwrap();
    assert!(
        page.contains("script error (exit 1)") && page.contains("boom &lt;b&gt;"),
        "{page}"
    );
    // A safe stop: the quorum interlock refuses the second follower's stop; the page says so, with the
    // message.
    let leader = c.leader();
    let (first, second) = match leader.as_str() {
        "node1" => ("node2", "node3"),
        "node2" => ("node1", "node3"),
        _ => ("node1", "node2"),
    };
    let p = dir.join("stop.html");
    let out = c.run(&[
        "--report",
        p.to_str().unwrap(),
        "-e",
        &format!("node::stop(\"{first}\"); node::stop(\"{second}\")"),
    ]);
    expect(&out, 3);
    let page = std::fs::read_to_string(&p).unwrap();
    assert!(
        page.contains("id=\"safe-stop\"") && page.contains("quorum interlock"),
        "{page}"
    );
    assert_eq!(page.matches("data-state=\"down\"").count(), 1);
    c.host(first, "start");
    // Back and caught up after this stop (not an earlier catch-up), so the next run may drain node3.
    poll_until(
        &format!("{first} to catch up after its stop"),
        Duration::from_secs(60),
        || {
            let events = c.events();
            let last = |kind: &str| {
                events
                    .iter()
                    .rposition(|e| e.kind == kind && e.node.as_deref() == Some(first))
            };
            last("caught_up") > last("stop")
        },
    );
    // An interrupt: Ctrl-C while the run sleeps with node3 drained; the run undrains it and reports.
    let p = dir.join("interrupted.html");
    let out = c.run_until_stderr(
        &[
            "--report",
            p.to_str().unwrap(),
            "-e",
            "node::drain(\"node3\"); print(\"drained\"); sleep(600)",
        ],
        "node3: drain",
        |child| {
            c.wait_for_event("drain", "node3");
            signal(child, "INT");
        },
    );
    expect(&out, 130);
    let page = std::fs::read_to_string(&p).unwrap();
    assert!(page.contains("interrupted (exit 130)"), "{page}");
    assert_eq!(page.matches("data-state=\"drained\"").count(), 1, "{page}");
    // The signal came after the drain (the test sent it then).
    let drained = segments(&page, "node3", "drained")[0].0;
    check_signals(&page, &[("SIGINT: the run stops", drained)]).unwrap();
    let e = check_signals(
        &page.replace("class=\"signal\"", "class=\"x\""),
        &[("SIGINT", drained)],
    )
    .unwrap_err();
    assert!(e.contains("signals"), "{e}");
}

/// The page's signal lines: one per `(words, after)`, in order, each saying `words` in its hover and placed
/// at or after `after` (the page's seconds; a margin of a simulated second for placing the run's events on
/// the simulator's clock) and before the end of the timeline.
fn check_signals(page: &str, want: &[(&str, f64)]) -> Result<(), String> {
    let lines = tags(page, "<line class=\"signal\"");
    if lines.len() != want.len() {
        return Err(format!(
            "{} signals drawn, {} received",
            lines.len(),
            want.len()
        ));
    }
    let mut last = f64::NEG_INFINITY;
    for (line, (words, after)) in lines.iter().zip(want) {
        let t = attr_f64(line, "data-t");
        let at = page.find(*line).unwrap();
        let title = &page[at..at + page[at..].find("</title>").unwrap()];
        if !title.contains(words) || t + 1.0 < *after || t < last {
            return Err(format!(
                "a signal at {t} ({title}): expected {words:?} after {after} and {last}"
            ));
        }
        last = t;
    }
    Ok(())
}

/// What the rehearsal printed, on its page: the same predicted duration and every line of the plan, in order.
fn check_rehearsal(page: &str, said: &str) -> Result<(), String> {
    let figure = said
        .lines()
        .find_map(|l| l.strip_prefix("predicted duration: "))
        .ok_or("no predicted duration printed")?;
    let shown = tags(page, "id=\"h-predicted-duration\"")
        .first()
        .map(|t| {
            let at = page.find(*t).unwrap() + t.len();
            unescape(&page[at..at + page[at..].find("</td>").unwrap()])
        })
        .ok_or("no predicted duration on the page")?;
    if shown != figure {
        return Err(format!(
            "predicted duration {shown:?} on the page, {figure:?} printed"
        ));
    }
    let start = page
        .find("<pre class=\"plan\" id=\"plan\">")
        .ok_or("no plan on the page")?;
    let plan = unescape(&page[start..start + page[start..].find("</pre>").unwrap()]);
    let printed = said
        .lines()
        .skip_while(|l| !l.starts_with("plan ("))
        .take_while(|l| !l.starts_with("predicted duration"));
    let mut from = 0;
    for line in printed {
        match plan[from..].find(line) {
            Some(i) => from += i + line.len(),
            None => return Err(format!("the plan on the page lacks {line:?}:\n{plan}")),
        }
    }
    Ok(())
}

/// A second signal exits at once, between a node's stop and start: the page is still written, from the
/// run's own calls, and says how the run ended.
#[test]
fn a_second_signal_still_leaves_the_page_as_far_as_the_run_got() {
    let c = Cluster::start(3, "0.10.4");
    let p = c.dir.path().join("once.html");
    let mut run = Running::start(
        &c,
        &[
            "--report",
            p.to_str().unwrap(),
            "-e",
            "node::drain(\"node3\"); node::stop(\"node3\"); sleep(600)",
        ],
    );
    run.until("node3: stop");
    c.wait_for_event("stop", "node3");
    run.signal("INT");
    // The first signal is taken (the run waits to finish node3's restart) before the second is sent.
    run.until("interrupted");
    run.signal("INT");
    let said = run.until("report (as far as the run got)");
    expect(&run.finish(), 130);
    assert!(said.contains(p.to_str().unwrap()), "{said}");
    let page = std::fs::read_to_string(&p).unwrap();
    assert!(page.contains("interrupted (exit 130)") && page.contains("exited at once"));
    assert_eq!(page.matches("data-state=\"down\"").count(), 1, "{page}");
    // Both signals, after the stop (the first was sent then).
    let stopped = segments(&page, "node3", "down")[0].0;
    check_signals(
        &page,
        &[
            ("SIGINT: the run stops", stopped),
            ("SIGINT again: the process exited at once", stopped),
        ],
    )
    .unwrap();
}

#[test]
fn a_report_path_that_cannot_be_written_stops_the_run_before_it_starts() {
    let c = Cluster::start(3, "0.10.4");
    let notes = c.dir.path().join("notes.txt");
    std::fs::write(&notes, "mine").unwrap();
    for (path, want) in [
        ("/nonexistent-dir/r.html".to_string(), "does not exist"),
        (notes.display().to_string(), "not an HTML report"),
    ] {
        let out = c.run(&["--report", &path, "rolling_upgrade.rhai", "0.11.0"]);
        let (_, err) = expect(&out, 2);
        assert!(err.contains(want) && err.contains("--report"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
    assert!(c.events_of(&["drain", "stop", "install"]).is_empty());
}

/// A 50-node rolling upgrade: the page follows the window at two widths, keeps every label whole and
/// apart, keeps a time axis in view down the lanes, has a row per node in its table, and no bar of the
/// failed-writes chart covers the caption.
#[test]
fn a_50_node_report_follows_the_window_keeps_its_labels_apart_and_an_axis_in_view() {
    let c = Cluster::with(SimConfig {
        nodes: 50,
        version: semver::Version::parse("0.10.4").unwrap(),
        // Fast, so 50 restarts stay a short test; slow enough that each outage is still on the log.
        speed: 50.0,
        ..SimConfig::default()
    });
    let path = c.dir.path().join("fifty.html");
    let out = c.run(&[
        "--yes",
        "--report",
        path.to_str().unwrap(),
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    expect(&out, 0);
    let page = std::fs::read_to_string(&path).unwrap();
    assert_self_contained(&page);
    check_nodes(&page, &c, 50, "0.10.4").unwrap();
    let names: Vec<String> = (1..=50).map(|i| format!("node{i}")).collect();
    let downs = stops(&c, &names.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(downs.values().all(|&n| n == 1), "{downs:?}");

    let Some(browser) = binary_or_skip(
        "report::a_50_node_report_follows_the_window_keeps_its_labels_apart_and_an_axis_in_view",
        &CHROMIUM,
    ) else {
        return;
    };
    let mut widths = Vec::new();
    for size in [(1280, 900), (1920, 1080)] {
        let m = layout_at(&browser, &page, size);
        assert_eq!(layout_errors(&m, &downs), Vec::<String>::new(), "{size:?}");
        let rows = boxes(&m["nodes"]);
        assert_eq!(rows.len(), 50, "{size:?}: the node table's rows");
        assert!(
            rows.iter().all(|r| r[3] > 0.0),
            "{size:?}: a node row not shown"
        );
        widths.push(boxed(&m["svg"])[2]);
    }
    assert!(
        widths[1] > widths[0] + 500.0,
        "the timeline did not widen: {widths:?}"
    );

    // Each check fires on a page broken its way.
    let first_label = tags(&page, "class=\"label in")[0];
    let label_end = page.find(first_label).unwrap();
    let label_end = label_end + page[label_end..].find("</text>").unwrap() + "</text>".len();
    let label = &page[page.find(first_label).unwrap()..label_end];
    let caption_y = attr_f64(tags(&page, "id=\"caption\"")[0], "y");
    let broken = [
        (
            "two labels on top of each other",
            page.replacen(label, &format!("{label}{label}"), 1),
            "overlap",
        ),
        (
            "a label pushed out of its bar",
            page.replacen(first_label, &first_label.replace(" dx=\"", " dx=\"-90"), 1),
            "outside its bar",
        ),
        (
            "a step's label gone",
            page.replacen(label, "", 1),
            "steps without a label",
        ),
        (
            "the axis at the top only",
            without_all(&page, "<g class=\"axis\">", "</g>", 1),
            "no time axis in view",
        ),
        (
            "a bar over the caption",
            page.replacen(
                "<g id=\"failed-writes\">",
                &format!(
                    "<g id=\"failed-writes\"><rect class=\"bar\" x=\"0\" y=\"{}\" width=\"40%\" height=\"14\"/>",
                    caption_y - 10.0
                ),
                1,
            ),
            "covers the caption",
        ),
        (
            "a fixed width",
            page.replacen(
                "id=\"timeline\" width=\"100%\"",
                "id=\"timeline\" width=\"2600\"",
                1,
            ),
            "px wide in a",
        ),
    ];
    for (what, html, want) in broken {
        let errors = layout_errors(&layout_at(&browser, &html, (1280, 900)), &downs);
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{what}: {errors:?}"
        );
    }
}

/// The stock procedure waits for a healthy cluster before a node's turn: a follower crashes as the first
/// one catches up, and the run waits until it is started by hand. The page draws that wait where the
/// simulator's log puts it: after the crash, ending once the node was started again, before its stop.
#[test]
fn the_health_wait_before_a_stop_is_drawn_where_the_run_waited() {
    let c = Cluster::start(3, "0.10.4");
    let leader = c.leader();
    let followers: Vec<&str> = ["node1", "node2", "node3"]
        .into_iter()
        .filter(|n| *n != leader)
        .collect();
    let (first, crashed) = (followers[0], followers[1]);
    c.inject_when(crashed, "crash", "caught_up", first);
    let path = c.dir.path().join("wait.html");
    let mut run = Running::start(
        &c,
        &[
            "--yes",
            "--report",
            path.to_str().unwrap(),
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
    );
    run.until("waiting up to");
    c.host(crashed, "start");
    expect(&run.finish(), 0);
    let page = std::fs::read_to_string(&path).unwrap();
    check_wait(&page, crashed).unwrap();
    // The check fires on a page without the wait.
    let e = check_wait(&page.replace("class=\"wait\"", "class=\"x\""), crashed).unwrap_err();
    assert!(e.contains("no wait"), "{e}");

    let Some(browser) = binary_or_skip(
        "report::the_health_wait_before_a_stop_is_drawn_where_the_run_waited: the layout",
        &CHROMIUM,
    ) else {
        return;
    };
    let m = layout(&browser, &page);
    let downs = stops(&c, &["node1", "node2", "node3"]);
    assert_eq!(downs[crashed], 2, "{downs:?}");
    assert_eq!(layout_errors(&m, &downs), Vec::<String>::new());
    let waits = boxes(&m["waits"]);
    assert!(
        waits.iter().any(|w| w[2] >= 1.0 && w[3] >= 1.0),
        "no wait drawn: {waits:?}"
    );
}

/// The health wait on the page: one that began after `node` crashed and ended after it was started again,
/// before its stop for the upgrade (in the page's seconds, which place the run's own events on the
/// simulator's clock: a margin of a simulated second).
fn check_wait(page: &str, node: &str) -> Result<(), String> {
    const MARGIN: f64 = 1.0;
    let downs = segments(page, node, "down");
    let [(crashed, started), (stopped, _)] = downs[..] else {
        return Err(format!(
            "{node}: down {downs:?}, expected a crash and a stop"
        ));
    };
    let waits: Vec<(f64, f64)> = tags(page, "class=\"wait\"")
        .into_iter()
        .map(|t| (attr_f64(t, "data-t0"), attr_f64(t, "data-t1")))
        .collect();
    waits
        .iter()
        .find(|&&(t0, t1)| {
            t0 + MARGIN >= crashed && t1 + MARGIN >= started && t1 <= stopped + MARGIN && t1 > t0
        })
        .map(|_| ())
        .ok_or_else(|| {
            format!(
                "no wait from after the crash at {crashed:.2} to after the start at {started:.2}, before the stop at {stopped:.2}: {waits:?}"
            )
        })
}

/// A canary on a bad release fails its check on the error rate and is rolled back: the page marks the
/// failed check on the canary's lane, where the watch was, with the rate the run printed, and its chart
/// does not call the run clean without saying what the check measured.
#[test]
fn a_failed_canary_marks_its_check_and_the_chart_says_what_the_error_rate_was() {
    let c = Cluster::with_bad(3, "0.11.0");
    let path = c.dir.path().join("canary.html");
    let out = c.run(&[
        "--yes",
        "--set",
        "monitor_secs=120",
        "--set",
        "interval_secs=30",
        "--report",
        path.to_str().unwrap(),
        "canary_upgrade.rhai",
        "0.11.0",
    ]);
    let (_, err) = expect(&out, 3);
    let check = err
        .lines()
        .find(|l| l.contains("check 1 at"))
        .unwrap_or_else(|| panic!("no check line:\n{err}"));
    let rate: f64 = check
        .split("error rate ")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no error rate in {check}"));
    let canary = c
        .events_of(&["stop"])
        .first()
        .map(|(_, n)| n.clone())
        .expect("the canary was stopped");
    let page = std::fs::read_to_string(&path).unwrap();
    check_failed_check(&page, &canary, rate, c.stats().client_writes_failed).unwrap();
    // The check fires: no marker, another rate, the old words.
    let broken = [
        (
            page.replace("mark-check-failed", "mark-gate"),
            "no failed check",
        ),
        (page.replace(&format!("{rate:.2}%"), "0.01%"), "error rate"),
        (page.replace("own error rate", "own rate"), "caption"),
    ];
    for (html, want) in broken {
        let e = check_failed_check(&html, &canary, rate, c.stats().client_writes_failed)
            .expect_err(want);
        assert!(e.contains(want), "{want}: {e}");
    }
}

/// The failed check is marked on the canary's lane between its upgrade and its rollback, its hover gives
/// the error rate the run printed (`rate`, percent), and the chart's caption says what the simulator counted
/// (`failed`: writes that failed for good) and that the check measured the node's own error rate.
fn check_failed_check(page: &str, canary: &str, rate: f64, failed: u64) -> Result<(), String> {
    let lane = &page[page
        .find(&format!("<g class=\"lane\" data-node=\"{canary}\">"))
        .ok_or("no canary lane")?..];
    let lane = &lane[..lane.find("</g>").unwrap_or(lane.len())];
    let marks = tags(lane, "mark-check-failed");
    let Some(mark) = marks.first() else {
        return Err(format!("no failed check on {canary}'s lane"));
    };
    let t = attr_f64(mark, "data-t");
    let downs = segments(page, canary, "down");
    let [(_, upgraded), (rolled_back, _)] = downs[..] else {
        return Err(format!(
            "{canary}: down {downs:?}, expected the upgrade and the rollback"
        ));
    };
    if t < upgraded || t > rolled_back {
        return Err(format!(
            "the failed check at {t} is not between the upgrade ({upgraded}) and the rollback ({rolled_back})"
        ));
    }
    let at = page.find(*mark).unwrap();
    let title = &page[at..at + page[at..].find("</title>").unwrap()];
    if !title.contains(&format!("error rate {rate:.2}%")) {
        return Err(format!(
            "the marker does not give the error rate {rate:.2}%: {title}"
        ));
    }
    let caption = tags(page, "id=\"caption\"")
        .first()
        .map(|t| {
            let at = page.find(*t).unwrap();
            unescape(&page[at..at + page[at..].find("</text>").unwrap()])
        })
        .ok_or("no caption")?;
    let counted = if failed == 0 {
        "No client write failed for good".to_string()
    } else {
        format!("{failed} in all")
    };
    if !caption.contains(&counted)
        || !caption.contains(&format!("{canary}'s own error rate, {rate:.2}%"))
    {
        return Err(format!(
            "the caption does not say {counted:?} and the canary's own error rate {rate:.2}%: {caption}"
        ));
    }
    Ok(())
}
