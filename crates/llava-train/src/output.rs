//! The run directory, ms-swift's `output/<model_type>/v<N>-<YYYYmmdd-HHMMSS>/`, and the UTC time
//! stamps in its name.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, io};

/// `<output_dir>/<model_type>/v<N>-<stamp>` with N one more than the largest `v<N>` there (0
/// when none), created now; or `output_dir` itself without the suffix.
pub fn make_run_dir(output_dir: &Path, model_type: &str, suffix: bool) -> Result<PathBuf> {
    if !suffix {
        std::fs::create_dir_all(output_dir).map_err(io(output_dir))?;
        return Ok(output_dir.to_path_buf());
    }
    let parent = output_dir.join(model_type);
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let next = std::fs::read_dir(&parent)
        .map_err(io(&parent))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let digits: String = name
                .strip_prefix('v')?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u64>().ok()
        })
        .max()
        .map_or(0, |n| n + 1);
    let dir = parent.join(format!("v{next}-{}", stamp(SystemTime::now())));
    std::fs::create_dir(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// `YYYYmmdd-HHMMSS` in UTC.
pub fn stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Howard Hinnant's days-since-1970 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_and_versions() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_599_155); // 2026-12-06 23:19:15 UTC
        assert_eq!(stamp(t), "20261206-231915");
        assert_eq!(
            stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229-000000"
        );
        let out = tempfile::tempdir().unwrap();
        let a = make_run_dir(out.path(), "m", true).unwrap();
        let b = make_run_dir(out.path(), "m", true).unwrap();
        assert!(a.file_name().unwrap().to_string_lossy().starts_with("v0-"));
        assert!(b.file_name().unwrap().to_string_lossy().starts_with("v1-"));
        std::fs::create_dir(out.path().join("m/v9-x")).unwrap();
        let c = make_run_dir(out.path(), "m", true).unwrap();
        assert!(c.file_name().unwrap().to_string_lossy().starts_with("v10-"));
    }
}
