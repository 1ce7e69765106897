//! Every configuration example (and campaign file for `repro simulate`) in the docs parses
//! with this version of `repro`, so the docs cannot drift from the code. A block that starts without a `[section]` continues the
//! section the file's previous block ended in (as the docs present them).

use std::path::Path;

use repro_run::Config;

fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if line.trim() == "```toml" {
            let body: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| l.trim() != "```")
                .collect();
            out.push((n + 1, body.join("\n") + "\n"));
        }
    }
    out
}

#[test]
fn every_configuration_example_in_the_docs_parses() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&docs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut section = String::new();
        for (line, block) in toml_blocks(&text) {
            let starts_with_section = block
                .lines()
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .is_some_and(|l| l.trim_start().starts_with('['));
            let whole = if starts_with_section {
                block.clone()
            } else {
                format!("{section}\n{block}")
            };
            if let Some(last) = block
                .lines()
                .rev()
                .find(|l| l.trim_start().starts_with('['))
            {
                section = last.trim().to_owned();
            }
            let name = format!("{}:{line}", path.display());
            if block.trim_start().starts_with("[[dataset]]") {
                // A campaign file for `repro simulate`, not a configuration.
                if let Err(e) = repro_run::simulate::parse_campaign(&block, Path::new(&name)) {
                    panic!("{name}: the campaign example does not parse:\n{block}\n{e}");
                }
                checked += 1;
                continue;
            }
            if let Err(e) = Config::parse(&whole, Path::new(&name)) {
                panic!("{name}: the example does not parse:\n{whole}\n{e}");
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 6,
        "only {checked} examples found: the extraction broke"
    );
}
