//! `docs/openapi.json` is what `kefu openapi` prints.

use std::process::Command;

#[test]
fn the_committed_document_is_what_kefu_openapi_prints() {
    let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("openapi")
        .output()
        .expect("kefu runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let document: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
    assert!(
        committed == printed,
        "docs/openapi.json is not the document kefu builds; regenerate it with \
         `cargo run -p kefu -- openapi > docs/openapi.json`"
    );
}
