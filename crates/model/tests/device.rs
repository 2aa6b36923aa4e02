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

#[test]
fn device_names_parse_in_any_build_and_print_back() {
    use embcam_model::DeviceSpec;
    for (name, spec, cuda) in [
        ("flex", DeviceSpec::Flex, false),
        ("tch-cpu", DeviceSpec::TchCpu, false),
        ("tch-cuda", DeviceSpec::TchCuda(0), true),
        ("tch-cuda:3", DeviceSpec::TchCuda(3), true),
    ] {
        let parsed: DeviceSpec = name.parse().expect(name);
        assert_eq!((parsed, parsed.is_cuda(), parsed.to_string()), (spec, cuda, name.to_string()));
    }
    // `tch-cuda:0` is GPU 0, printed short; errors name what was written.
    assert_eq!("tch-cuda:0".parse::<DeviceSpec>().ok(), Some(DeviceSpec::TchCuda(0)));
    for bad in ["cuda", "tch-gpu", "tch-cuda:x", "tch-cuda:", ""] {
        let err = bad.parse::<DeviceSpec>().expect_err(bad).to_string();
        assert!(err.contains(&format!("`{bad}`")) || err.contains(bad), "{err}");
    }
}
