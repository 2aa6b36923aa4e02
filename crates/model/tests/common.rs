//! Helpers shared by the integration tests.

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Uniform `[-1, 1)` tensor of `shape` from `seed`.
pub fn random4(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Values of a tensor on the host as f64.
pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.try_into_vec_as::<f64>().expect("read back")
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// A tensor of a hand-parsed `.safetensors` file: dtype, shape, raw little-endian bytes.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl RawTensor {
    pub fn f32(shape: Vec<usize>, values: &[f32]) -> Self {
        RawTensor {
            dtype: "F32".into(),
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn values(&self) -> Vec<f32> {
        assert_eq!(self.dtype, "F32");
        self.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }
}

/// Reads a `.safetensors` file by hand (8-byte header length, JSON header, data), independent of
/// the crate under test.
pub fn read_safetensors(path: &std::path::Path) -> std::collections::BTreeMap<String, RawTensor> {
    let bytes = std::fs::read(path).expect("read safetensors");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header");
    let data = &bytes[8 + n..];
    let mut out = std::collections::BTreeMap::new();
    for (name, v) in header.as_object().expect("object") {
        if name == "__metadata__" {
            continue;
        }
        let offs: Vec<usize> = v["data_offsets"]
            .as_array()
            .expect("offsets")
            .iter()
            .map(|x| x.as_u64().expect("u64") as usize)
            .collect();
        out.insert(
            name.clone(),
            RawTensor {
                dtype: v["dtype"].as_str().expect("dtype").to_string(),
                shape: v["shape"]
                    .as_array()
                    .expect("shape")
                    .iter()
                    .map(|x| x.as_u64().expect("u64") as usize)
                    .collect(),
                bytes: data[offs[0]..offs[1]].to_vec(),
            },
        );
    }
    out
}

/// Writes a `.safetensors` file by hand, tensors in the given order.
pub fn write_safetensors(path: &std::path::Path, tensors: &[(String, RawTensor)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, t) in tensors {
        let start = data.len();
        data.extend_from_slice(&t.bytes);
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(path, out).expect("write safetensors");
}
