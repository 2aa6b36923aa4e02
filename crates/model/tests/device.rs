//! Run-time device choice.

use embcam_model::device::HAS_TCH;
use embcam_model::{ModelError, parse_device};

#[test]
fn flex_parses_and_unknown_names_are_refused() {
    assert!(parse_device("flex").is_ok());
    for bad in ["cuda", "tch-gpu", "tch-cuda:x", ""] {
        let err = parse_device(bad).expect_err(bad);
        assert!(matches!(err, ModelError::Device { .. }), "{err}");
    }
}

#[test]
fn libtorch_devices_need_the_tch_feature() {
    for name in ["tch-cpu", "tch-cuda", "tch-cuda:1"] {
        let parsed = parse_device(name);
        if HAS_TCH {
            assert!(parsed.is_ok(), "{name}");
        } else {
            let msg = parsed.expect_err(name).to_string();
            assert!(
                msg.contains("rebuild with --features tch; see crates/model/README.md"),
                "{msg}"
            );
        }
    }
}
