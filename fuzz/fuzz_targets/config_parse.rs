//! libFuzzer target for the config parser: no input may make it panic, and
//! whatever parses must survive normalise, validate and a JSON round trip.
#![no_main]

use despina::config::{
    DirEntry, NormalizeContext, ValidateContext, from_json, normalize, parse, to_json, validate,
};
use libfuzzer_sys::fuzz_target;

fn round_trip(cfg: &despina::config::ModelConfig) {
    let json = to_json(cfg);
    let back = match from_json(&json.to_string()) {
        Ok(back) => back,
        Err(e) => panic!("to_json output refused: {e}"),
    };
    assert_eq!(to_json(&back), json, "JSON round trip differs");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The JSON reader gets the same bytes.
    if let Ok(cfg) = from_json(text) {
        round_trip(&cfg);
    }
    let Ok((mut cfg, sm)) = parse(text) else { return };
    round_trip(&cfg);
    let mut ctx = NormalizeContext::new("model.identity");
    ctx.version_entries = Some(vec![DirEntry { name: "model.py".into(), is_dir: false }]);
    if normalize(&mut cfg, &ctx).is_ok() {
        let vctx = ValidateContext {
            model_name: "model.identity",
            gpus: &[0],
            backends: &["python", "identity"],
            source_map: Some(&sm),
        };
        for e in validate(&cfg, &vctx) {
            assert!(!e.to_string().is_empty());
        }
        round_trip(&cfg);
    }
});
