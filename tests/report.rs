//! `--report FILE.html`: the page a run leaves, loaded in headless Chromium with networking off, its
//! lanes measured as the browser lays them out and held against the simulator's own records. What the
//! page says is checked with or without a browser; only the layout needs Chromium.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    binary_or_skip, expect, poll_until, signal, try_poll_until, Cluster, Running, CHROMIUM,
};

/// Measures what the browser drew: the page is copied with a script that writes the boxes of the
/// timeline, each lane and each of its segments into `<pre id="layout">`, which `--dump-dom` prints.
/// The report itself carries no script; this one is the test's.
const MEASURE: &str = r#"<script>
(function () {
  function box(el) { var r = el.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }
  var svg = document.getElementById('timeline');
  var out = {
    page: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
    svg: svg ? box(svg) : null,
    predicted: !!document.getElementById('predicted'),
    steps: document.querySelectorAll('#steps tr.step-row').length,
    lanes: Array.prototype.map.call(document.querySelectorAll('g.lane'), function (g) {
      return {
        node: g.getAttribute('data-node'),
        box: box(g),
        segs: Array.prototype.map.call(g.querySelectorAll('rect.seg'), function (s) {
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
            "--window-size=1200,900",
            "--virtual-time-budget=5000",
        ])
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
    let json = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap()
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

    let Some(browser) = binary_or_skip(
        "report::a_rolling_upgrade_report_shows_every_nodes_outage_as_the_simulator_logged_it: the layout",
        &CHROMIUM,
    ) else {
        return;
    };
    let measured = layout(&browser, &page);
    check_lanes(&measured, &downs).unwrap();

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
    let (_, err) = expect(&out, 0);
    assert!(err.contains("(the predicted timeline)"), "{err}");
    assert!(
        c.events_of(&["stop", "drain", "install"]).is_empty(),
        "the live cluster was touched"
    );
    let page = std::fs::read_to_string(&path).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("<title>Predicted: "));

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
