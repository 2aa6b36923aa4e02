//! Heatmaps on disk: a NumPy `.npy` file (format v1.0, little-endian `f32`, shape
//! `(rows, h, w)`) streamed one batch at a time, and a CSV index that says what each row is.
//!
//! The NPY v1.0 layout: the magic `\x93NUMPY`, version bytes `1 0`, a little-endian `u16` header
//! length, then an ASCII Python dict literal `{'descr': '<f4', 'fortran_order': False,
//! 'shape': (rows, h, w), }` padded with spaces and ended by `\n` so that the data starts at a
//! multiple of 64 bytes; then the values in C order. `numpy.load` reads it, and the index reads
//! with `numpy.genfromtxt`, `pandas.read_csv` or polars, without this project.
//!
//! Files are written to temporary names and renamed into place on [`HeatmapWriter::finish`], so a
//! reader never sees a half-written file.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{CamError, Result};
use crate::maps::CamMaps;
use crate::util;

/// The header is padded to this many bytes (magic included) so that it can be rewritten in place
/// with the final row count.
const HEADER_BYTES: usize = 128;

/// The NPY v1.0 header for a little-endian `f32` C-order array of `shape`, padded to
/// `HEADER_BYTES` (or the next multiple of 64 for very long shapes).
pub fn npy_header(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let total = total.max(HEADER_BYTES);
    while 10 + dict.len() + 1 < total {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Write a whole `f32` array of `shape` (C order) as a `.npy` file, atomically.
pub fn write_npy(path: &Path, shape: &[usize], values: &[f32]) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != values.len() {
        return Err(CamError::Shape(format!(
            "npy {}: shape {shape:?} holds {n} values, got {}",
            path.display(),
            values.len()
        )));
    }
    let mut bytes = npy_header(shape);
    bytes.reserve(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    util::write_atomic(path, &bytes)
}

/// Read a `.npy` file of little-endian `f32` in C order (what [`write_npy`] and
/// [`HeatmapWriter`] write; also NumPy's own `np.save` of a `float32` array): its shape and values.
/// Anything else (another dtype, Fortran order, a short file) is an error naming the file.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes =
        std::fs::read(path).map_err(|source| CamError::Io { path: path.to_path_buf(), source })?;
    let bad = |why: &str| {
        CamError::Invalid(format!(
            "{}: not a little-endian f32 .npy file ({why}); heatmap files are written by \
             `embcam explain`, rerun it to rewrite them",
            path.display()
        ))
    };
    if bytes.len() < 10 || &bytes[..8] != b"\x93NUMPY\x01\x00" {
        return Err(bad("no NPY v1.0 magic"));
    }
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = bytes.get(10..10 + len).ok_or_else(|| bad("header cut short"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    let compact: String = header.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.contains("'descr':'<f4'") {
        return Err(bad("dtype is not '<f4'"));
    }
    if !compact.contains("'fortran_order':False") {
        return Err(bad("Fortran order"));
    }
    let shape_txt = compact
        .split("'shape':(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| bad("shape is not a tuple of integers")))
        .collect::<Result<_>>()?;
    let data = &bytes[10 + len..];
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad("shape overflows"))?;
    if data.len() != n * 4 {
        return Err(bad(&format!(
            "shape {shape:?} needs {} bytes of data, found {}",
            n * 4,
            data.len()
        )));
    }
    let values =
        data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((shape, values))
}

/// Streams raw (pre-ReLU) maps of one resolution into `<name>.npy` (`(rows, h, w)`, f32; the
/// heatmap is their ReLU, which the reader applies) and `<name>.csv`
/// (`row,image_id,method,proxy,stage,h,w`) inside a folder the caller chose.
pub struct HeatmapWriter {
    npy_path: PathBuf,
    csv_path: PathBuf,
    tmp: PathBuf,
    /// `None` once finished; a writer dropped unfinished removes its temporary file.
    file: Option<BufWriter<File>>,
    hw: Option<(usize, usize)>,
    rows: usize,
    index: String,
}

impl HeatmapWriter {
    /// Start `<dir>/<name>.npy` and `<dir>/<name>.csv` (the folder must exist).
    pub fn create(dir: &Path, name: &str) -> Result<Self> {
        let npy_path = dir.join(format!("{name}.npy"));
        let csv_path = dir.join(format!("{name}.csv"));
        let tmp = util::temp_path(&npy_path);
        let io = |source| CamError::Io { path: tmp.clone(), source };
        let mut file = BufWriter::new(File::create(&tmp).map_err(io)?);
        file.write_all(&npy_header(&[0, 0, 0])).map_err(io)?;
        Ok(HeatmapWriter {
            npy_path,
            csv_path,
            tmp: tmp.clone(),
            file: Some(file),
            hw: None,
            rows: 0,
            index: "row,image_id,method,proxy,stage,h,w\n".into(),
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Append every (image, proxy) map of `maps`. All maps of one writer share one `h × w`.
    pub fn append(&mut self, maps: &CamMaps) -> Result<()> {
        let hw = (maps.h, maps.w);
        match self.hw {
            None => self.hw = Some(hw),
            Some(prev) if prev != hw => {
                return Err(CamError::Shape(format!(
                    "{}: maps of {}×{} cannot join a file of {}×{} maps; use one writer per stage",
                    self.npy_path.display(),
                    hw.0,
                    hw.1,
                    prev.0,
                    prev.1
                )));
            }
            Some(_) => {}
        }
        let io = |source| CamError::Io { path: self.tmp.clone(), source };
        for b in 0..maps.n_images() {
            for p in 0..maps.n_proxies() {
                let bytes: Vec<u8> = maps.raw(b, p).iter().flat_map(|v| v.to_le_bytes()).collect();
                let file = self
                    .file
                    .as_mut()
                    .ok_or_else(|| CamError::Invalid("writer already finished".into()))?;
                file.write_all(&bytes).map_err(io)?;
                self.index.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    self.rows,
                    maps.image_ids[b],
                    csv_field(&maps.method),
                    csv_field(&maps.columns[p]),
                    csv_field(&maps.stage),
                    maps.h,
                    maps.w
                ));
                self.rows += 1;
            }
        }
        Ok(())
    }

    /// Write the final header and the index, and move both files into place.
    pub fn finish(mut self) -> Result<(PathBuf, PathBuf)> {
        let (h, w) = self.hw.unwrap_or((0, 0));
        let header = npy_header(&[self.rows, h, w]);
        let io = |source| CamError::Io { path: self.tmp.clone(), source };
        if header.len() != HEADER_BYTES {
            return Err(CamError::Shape(format!(
                "npy header of {} bytes for shape ({}, {h}, {w})",
                header.len(),
                self.rows
            )));
        }
        let mut file =
            self.file.take().ok_or_else(|| CamError::Invalid("writer already finished".into()))?;
        file.flush().map_err(io)?;
        let mut f = file.into_inner().map_err(|e| io(e.into_error()))?;
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        f.write_all(&header).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        util::write_atomic(&self.csv_path, self.index.as_bytes())?;
        std::fs::rename(&self.tmp, &self.npy_path)
            .map_err(|source| CamError::Io { path: self.npy_path.clone(), source })?;
        Ok((self.npy_path.clone(), self.csv_path.clone()))
    }
}

impl Drop for HeatmapWriter {
    /// An unfinished writer leaves nothing behind: its temporary file is removed.
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Quote a CSV field when it holds a comma, a quote or a newline.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_follows_the_npy_v1_spec() {
        let h = npy_header(&[3, 7, 7]);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([h[8], h[9]]) as usize;
        assert_eq!(10 + len, h.len());
        let dict = std::str::from_utf8(&h[10..]).unwrap_or_default();
        assert!(dict.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 7, 7), }"));
        assert!(dict.ends_with('\n'));
        assert!(
            std::str::from_utf8(&npy_header(&[5])[10..])
                .unwrap_or_default()
                .contains("'shape': (5,)")
        );
    }

    #[test]
    fn read_npy_reads_what_write_npy_wrote_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_npy(&p, &[2, 3, 4], &values).unwrap();
        assert_eq!(read_npy(&p).unwrap(), (vec![2, 3, 4], values));
        write_npy(&p, &[5], &[1.0; 5]).unwrap();
        assert_eq!(read_npy(&p).unwrap().0, vec![5]);
        // A file cut short names the file and what is wrong.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("a.npy") && e.contains("needs 20 bytes"), "{e}");
        // Another dtype (NumPy's float64 header) is refused, not misread.
        let mut f64_header = npy_header(&[5]);
        let at = f64_header.windows(3).position(|w| w == b"<f4").unwrap();
        f64_header[at + 2] = b'8';
        std::fs::write(&p, &f64_header).unwrap();
        assert!(read_npy(&p).unwrap_err().to_string().contains("'<f4'"));
        std::fs::write(&p, b"garbage").unwrap();
        assert!(read_npy(&p).unwrap_err().to_string().contains("magic"));
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("gradcam++"), "gradcam++");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
