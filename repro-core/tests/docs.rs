//! The documentation cannot drift from the code.

#[test]
fn lifecycle_doc_shows_the_graph_generated_from_the_table() {
    let doc = include_str!("../../docs/lifecycle.md");
    let start = doc
        .find("```mermaid\n")
        .expect("docs/lifecycle.md has a mermaid block")
        + "```mermaid\n".len();
    let end = start
        + doc[start..]
            .find("```")
            .expect("the mermaid block is closed");
    let generated = repro_core::transition::mermaid();
    assert_eq!(
        &doc[start..end],
        generated,
        "docs/lifecycle.md is out of date; replace its mermaid block with:\n{generated}"
    );
}
