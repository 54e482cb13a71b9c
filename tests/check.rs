//! `despina check` on a copy of the reference Triton repository (configs from
//! tests/data/config/reference), then on broken copies: every problem is reported with its
//! file, line and column, and the exit status says whether any model is invalid.

use std::path::{Path, PathBuf};
use std::process::Command;

fn reference_copy() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config/reference");
    let dst = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let m = entry.unwrap().path();
        let name = m.file_name().unwrap();
        let dir = dst.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(m.join("config.pbtxt"), dir.join("config.pbtxt")).unwrap();
        let versions = std::fs::read_to_string(m.join("versions")).unwrap_or_else(|_| "1".into());
        for v in versions.split_whitespace() {
            std::fs::create_dir_all(dir.join(v)).unwrap();
            std::fs::write(dir.join(v).join("model.py"), "").unwrap();
        }
    }
    std::fs::write(
        dst.path().join("classify_fp32/labels.txt"),
        "a\nb\nc\nd\ne\nf\ng\nh\n",
    )
    .unwrap();
    dst
}

fn check(repos: &[&Path]) -> (bool, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_despina"))
        .arg("check")
        .args(repos)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    (
        out.status.success(),
        text.lines().map(str::to_string).collect(),
    )
}

fn edit(path: PathBuf, from: &str, to: &str) {
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn accepts_every_reference_model() {
    let repo = reference_copy();
    let (ok, lines) = check(&[repo.path()]);
    assert!(ok, "{lines:#?}");
    assert!(lines.is_empty(), "{lines:#?}");
}

#[test]
fn reports_each_broken_model_precisely() {
    let repo = reference_copy();
    let r = repo.path();
    edit(
        r.join("simple/config.pbtxt"),
        "max_batch_size",
        "max_batch_sise",
    );
    edit(r.join("add_sub/config.pbtxt"), "TYPE_FP32", "TYPE_FP23");
    edit(
        r.join("simple_int8/config.pbtxt"),
        "name: \"simple_int8\"",
        "name: \"simple_int9\"",
    );
    edit(
        r.join("identity_fp32/config.pbtxt"),
        "preferred_batch_size: [ 4, 8 ]",
        "preferred_batch_size: [ 4, 16 ]",
    );
    edit(
        r.join("ensemble_simple/config.pbtxt"),
        "model_name: \"simple\"",
        "model_name: \"nosuch\"",
    );
    std::fs::remove_dir_all(r.join("square_int32/1")).unwrap();
    std::fs::remove_file(r.join("classify_fp32/labels.txt")).unwrap();
    std::fs::remove_file(r.join("simple_string/1/model.py")).unwrap();
    let (ok, lines) = check(&[r]);
    assert!(!ok);
    let p = |s: &str| format!("{}/{s}", r.display());
    let expected = vec![
        p(
            "add_sub/config.pbtxt:6:31: input[0].data_type: unknown value `TYPE_FP23` for inference.DataType; did you mean `TYPE_FP32`?",
        ),
        p(
            "classify_fp32/config.pbtxt:6:61: output[0].label_filename: labels file 'labels.txt' of output 'OUTPUT0' does not exist in the model folder",
        ),
        p(
            "ensemble_simple/config.pbtxt:16:7: ensemble_scheduling.step[0].model_name: ensemble 'ensemble_simple' uses model 'nosuch', which is in none of the repositories",
        ),
        p(
            "identity_fp32/config.pbtxt:8:30: dynamic_batching.preferred_batch_size[1]: dynamic batching preferred size must be <= max batch size for identity_fp32",
        ),
        p(
            "simple/config.pbtxt:5:1: unknown field `max_batch_sise` in ModelConfig; did you mean `max_batch_size`?",
        ),
        p(
            "simple_int8/config.pbtxt:2:1: name: unexpected directory name 'simple_int8' for model 'simple_int9', directory name must equal model name",
        ),
        p("simple_string/1/model.py: model file of version 1 is missing"),
        p(
            "square_int32: at least one version must be available under the version policy of model 'square_int32'",
        ),
    ];
    assert_eq!(lines, expected);
}

#[test]
fn duplicate_names_across_repositories() {
    let a = reference_copy();
    let b = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(b.path().join("simple/1")).unwrap();
    std::fs::copy(
        a.path().join("simple/config.pbtxt"),
        b.path().join("simple/config.pbtxt"),
    )
    .unwrap();
    let (ok, lines) = check(&[a.path(), b.path()]);
    assert!(!ok);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("model 'simple' appears in more than one repository"),
        "{}",
        lines[0]
    );
}

#[test]
fn an_initial_state_file_that_is_missing_or_the_wrong_size_is_reported() {
    let repo = tempfile::tempdir().unwrap();
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models_extra/onnx_state_accumulate");
    let dir = repo.path().join("onnx_state_accumulate");
    std::fs::create_dir_all(dir.join("1")).unwrap();
    std::fs::create_dir_all(dir.join("initial_state")).unwrap();
    std::fs::copy(src.join("config.pbtxt"), dir.join("config.pbtxt")).unwrap();
    std::fs::copy(src.join("1/model.onnx"), dir.join("1/model.onnx")).unwrap();
    std::fs::copy(
        src.join("initial_state/hundred"),
        dir.join("initial_state/hundred"),
    )
    .unwrap();
    let (ok, lines) = check(&[repo.path()]);
    assert!(ok, "{lines:#?}");

    std::fs::write(dir.join("initial_state/hundred"), [1u8, 2, 3]).unwrap();
    let (ok, lines) = check(&[repo.path()]);
    assert!(!ok);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("onnx_state_accumulate/config.pbtxt:")
                && l.contains("holds 3 bytes; state 'INPUT_STATE' of dims [1] needs 4")),
        "{lines:#?}"
    );
    std::fs::remove_file(dir.join("initial_state/hundred")).unwrap();
    let (ok, lines) = check(&[repo.path()]);
    assert!(!ok);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cannot read the initial state of 'INPUT_STATE'")),
        "{lines:#?}"
    );
}
