//! `hashmesh sim` from the command line: same seed, byte-identical CSV and SVG files; JSON for
//! scripts; bad input refused with a message that says what to do.

use std::path::Path;
use std::process::Command;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hashmesh")).arg("sim").args(args).output().expect("run hashmesh sim")
}

fn read_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("output dir")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn same_seed_writes_byte_identical_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let args =
        ["--scenario", "mixed", "--seed", "11", "--miners", "600", "--endpoints", "6", "--duration", "30s", "--quiet"];
    for dir in [&a, &b] {
        let out = sim(&[&args[..], &["--out", dir.to_str().expect("utf-8")]].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("hashmesh_planner") && text.contains("target"), "{text}");
    }
    let (fa, fb) = (read_dir(&a), read_dir(&b));
    let names: Vec<&str> = fa.iter().map(|f| f.0.as_str()).collect();
    assert!(names.contains(&"mixed_mixed.csv") && names.iter().any(|n| n.ends_with(".svg")), "{names:?}");
    assert_eq!(fa, fb, "same seed, same bytes");
    let csv = String::from_utf8_lossy(&fa.iter().find(|f| f.0 == "mixed_mixed.csv").expect("csv").1).into_owned();
    assert!(csv.starts_with("strategy,mean_ms,"), "{csv}");
    assert_eq!(csv.lines().count(), 10, "header + 9 strategies:\n{csv}");
}

#[test]
fn json_output_has_tables_and_targets() {
    let out = sim(&["--scenario", "polling", "--miners", "50", "--duration", "2h", "--json", "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["scenario"], "polling");
    let rows = v["tables"][0]["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["policy"], "poll_5s");
    // 50 pollers every 5 s for a day.
    assert_eq!(rows[0]["requests_m_per_day"], "0.86");
}

#[test]
fn bad_input_is_refused_with_what_to_do() {
    for (args, needle) in [
        (vec!["--scenario", "warp"], "choose one of"),
        (vec!["--scenario", "mixed", "--endpoints", "1"], "--endpoints"),
        (vec!["--scenario", "mixed", "--duration", "soon"], "use e.g. 90s"),
        (vec!["--scenario", "mixed", "--duration", "5s"], "at least 10s"),
    ] {
        let out = sim(&args);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
