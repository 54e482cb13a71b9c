use crate::config::*;

#[test]
fn smoke() {
    let text = std::fs::read_to_string("/work/shared/triton-reference/model_repository/simple_sequence/config.pbtxt").unwrap();
    let (mut cfg, sm) = parse(&text).unwrap();
    let mut ctx = NormalizeContext::new("simple_sequence");
    ctx.version_entries = Some(vec![DirEntry { name: "model.py".into(), is_dir: false }]);
    normalize(&mut cfg, &ctx).unwrap();
    let v = ValidateContext { model_name: "simple_sequence", gpus: &[], backends: &["python"], source_map: Some(&sm) };
    assert!(validate(&cfg, &v).is_empty());
    println!("{}", serde_json::to_string(&to_json(&cfg)).unwrap());
}
