//! The README's examples work as written: every TOML example passes
//! `callhook config check`, and every `CALLHOOK_*` variable an example sets is one
//! the service knows.

use std::collections::BTreeSet;
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

/// The bodies of the README's fenced blocks in `lang`.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}");
    let mut out = vec![];
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == fence {
            out.push(lines.by_ref().take_while(|l| l.trim() != "```").collect::<Vec<_>>().join("\n"));
        }
    }
    out
}

#[test]
fn every_toml_example_passes_config_check() {
    let examples = blocks(&readme(), "toml");
    assert!(!examples.is_empty(), "the README has a TOML example");
    for (i, toml) in examples.iter().enumerate() {
        let path = std::env::temp_dir().join(format!("callhook-readme-{}-{i}.toml", std::process::id()));
        std::fs::write(&path, toml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_callhook"))
            .args(["config", "check", "--config"])
            .arg(&path)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "example {i} fails config check:\n{toml}\n---\n{stdout}");
        assert!(stdout.contains("configuration OK"), "{stdout}");
        std::fs::remove_file(path).ok();
    }
}

#[test]
fn every_variable_an_example_sets_is_a_known_setting() {
    let help = Command::new(env!("CARGO_BIN_EXE_callhook")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let known: BTreeSet<&str> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("CALLHOOK_") || *w == "DATABASE_URL")
        .collect();
    assert!(known.contains("CALLHOOK_TWILIO_AUTH_TOKENS"), "serve --help lists its variables");
    let text = readme();
    let mut used = BTreeSet::new();
    for block in blocks(&text, "sh") {
        for word in block.split(|c: char| c.is_whitespace() || c == ';' || c == '&') {
            if let Some((name, _)) = word.split_once('=') {
                if name.starts_with("CALLHOOK_") {
                    used.insert(name.to_owned());
                }
            }
        }
    }
    assert!(!used.is_empty(), "the README's shell examples set variables");
    // The test suite's own variables are not the service's.
    let unknown: Vec<_> =
        used.iter().filter(|n| !known.contains(n.as_str()) && !n.starts_with("CALLHOOK_TEST_")).collect();
    assert!(unknown.is_empty(), "README examples set unknown variables: {unknown:?}");
}
