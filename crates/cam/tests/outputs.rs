//! Files: the `.npy` + CSV index read back by an independent parser of the NPY v1.0 format (and
//! by numpy when it is installed), overlays and galleries, all written atomically.

use std::path::Path;

use embcam_cam::{
    CamOptions, HeatmapWriter, Method, OverlayStyle, ProxyBatch, explain_many, gallery,
    gallery_index, overlay, write_png,
};
use embcam_cub::{BBox, CropRegion, Geometry, Mask, Silent};
use image::RgbImage;

use crate::common::*;

/// Parse a `.npy` by the spec: magic, version 1.0, u16 header length, dict, little-endian f32.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hl = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hl) % 64, 0, "data aligned to 64 bytes");
    let header = std::str::from_utf8(&bytes[10..10 + hl]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"));
    let shape_txt = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = shape_txt
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data: Vec<f32> = bytes[10 + hl..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

#[test]
fn heatmaps_round_trip_through_npy_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let net = TinyNet::small(131, true);
    let proxies = ProxyBatch::from_vectors(
        vec![4, 5],
        vec!["p,1".into(), "q".into()],
        vec![vec![vec![1.0; 5], vec![-1.0; 5]]; 2],
    )
    .unwrap();
    let outs = explain_many(
        &net,
        images(132, 2, 16),
        &proxies,
        &[Method::GradCam, Method::HiResCam],
        &CamOptions::new("block2"),
        &Silent,
    )
    .unwrap();
    let mut wr = HeatmapWriter::create(dir.path(), "block2").unwrap();
    for o in &outs {
        wr.append(&o.maps).unwrap();
    }
    assert_eq!(wr.rows(), 8);
    // Maps of another resolution are refused.
    let other = explain_many(
        &net,
        images(132, 2, 16),
        &proxies,
        &[Method::GradCam],
        &CamOptions::new("block1"),
        &Silent,
    )
    .unwrap();
    assert!(wr.append(&other[0].maps).is_err());
    let (npy, csv) = wr.finish().unwrap();
    let (shape, data) = read_npy(&npy);
    assert_eq!(shape, vec![8, 4, 4]);
    let index = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = index.lines().collect();
    assert_eq!(lines[0], "row,image_id,method,proxy,stage,h,w");
    assert_eq!(lines[1], "0,4,embeddingcam,\"p,1\",block2,4,4");
    assert_eq!(lines[8], "7,5,hirescam,q,block2,4,4");
    // Row 3 = embeddingcam, image 5, proxy q: the raw map.
    assert_eq!(&data[3 * 16..4 * 16], outs[0].maps.raw(1, 1));
    // Nothing temporary is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    // A writer dropped unfinished leaves nothing behind.
    let mut unfinished = HeatmapWriter::create(dir.path(), "dropped").unwrap();
    unfinished.append(&outs[0].maps).unwrap();
    drop(unfinished);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "only block2.npy and block2.csv");
    // numpy, when present, reads the same numbers.
    let py = format!(
        "import numpy as n; a = n.load('{}'); print(a.shape, float(a[3].sum()))",
        npy.display()
    );
    if let Ok(out) = std::process::Command::new("python3").args(["-c", &py]).output()
        && out.status.success()
    {
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.starts_with("(8, 4, 4)"), "{text}");
        let sum: f32 = outs[0].maps.raw(1, 1).iter().sum();
        let got: f32 = text.split_whitespace().last().unwrap().parse().unwrap();
        assert!((got - sum).abs() <= 1e-5 * sum.abs().max(1.0), "{got} vs {sum}");
        eprintln!("numpy read the file: {}", text.trim());
    }
}

#[test]
fn overlays_and_gallery_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let net = TinyNet::small(141, false);
    let proxies =
        ProxyBatch::from_vectors(vec![1, 2], vec!["p".into()], vec![vec![vec![1.0; 5]]; 2])
            .unwrap();
    let outs = explain_many(
        &net,
        images(142, 2, 16),
        &proxies,
        &[Method::GradCam, Method::EigenCam],
        &CamOptions::new("block1"),
        &Silent,
    )
    .unwrap();
    // An original image of 40×30, cropped at (4, 2) 32×24 and resized to the 16×16 input.
    let geo = Geometry::from_crop(40, 30, CropRegion { x: 4, y: 2, w: 32, h: 24 }, 16, 16, true);
    let img = RgbImage::from_pixel(40, 30, image::Rgb([90, 120, 60]));
    let mask = Mask {
        width: 40,
        height: 30,
        soft: (0..1200).map(|i| if (i % 40) > 10 && (i % 40) < 30 { 255 } else { 0 }).collect(),
    };
    let bbox = BBox { x: 10.0, y: 5.0, w: 20.0, h: 20.0 };
    let mut cells = Vec::new();
    for b in 0..2 {
        let mut row = Vec::new();
        for o in &outs {
            let heat = o.maps.to_original(b, 0, &geo, 0.0);
            assert_eq!(heat.len(), 1200);
            let ov =
                overlay(&img, &heat, Some(&bbox), Some(&mask), &OverlayStyle::default()).unwrap();
            row.push((o.maps.image_ids[b], o.maps.method.clone(), o.maps.columns[0].clone(), ov));
        }
        cells.push(row);
    }
    let single = dir.path().join("one.png");
    write_png(&single, &cells[0][0].3).unwrap();
    assert_eq!(image::open(&single).unwrap().to_rgb8(), cells[0][0].3);
    let tiles: Vec<Vec<RgbImage>> =
        cells.iter().map(|r| r.iter().map(|c| c.3.clone()).collect()).collect();
    let g = gallery(&tiles, 64, 4).unwrap();
    assert_eq!((g.width(), g.height()), (2 * 64 + 3 * 4, 2 * 64 + 3 * 4));
    assert_eq!(gallery_index(&cells).lines().nth(2), Some("0,1,1,eigencam,p"));
}
