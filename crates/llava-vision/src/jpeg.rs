//! JPEG pixels through libjpeg-turbo's decoder (mozjpeg is a libjpeg-turbo fork with the same
//! decoder), because Pillow decodes with libjpeg-turbo: its integer IDCT and "fancy" chroma
//! upsampling give pixels identical to Pillow's, where the image crate's pure-Rust decoder
//! differs by up to 3 levels on 4:2:0 files, and the bicubic resize then carries that into
//! the model's input.

use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg::{ColorSpace, Decompress};
use mozjpeg_sys::{
    J_MESSAGE_CODE, JWRN_HIT_MARKER, JWRN_JPEG_EOF, jpeg_common_struct, jpeg_error_mgr,
};

/// Decoded pixels (packed RGB) or libjpeg's message.
pub(crate) fn decode_rgb(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    // libjpeg reports fatal errors by unwinding out of the C code (mozjpeg's `unwinding`
    // feature, without the panic hook); nothing else here can panic.
    match catch_unwind(AssertUnwindSafe(|| decode_inner(bytes))) {
        Ok(result) => result,
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<Truncated>().map(|t| t.to_string()))
            .unwrap_or_else(|| "libjpeg failed".to_string())),
    }
}

fn decode_inner(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    let decompress = Decompress::with_err(error_manager())
        .from_mem(bytes)
        .map_err(|e| e.to_string())?;
    let (width, height) = (decompress.width() as u32, decompress.height() as u32);
    let cmyk = matches!(
        decompress.color_space(),
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK
    );
    if cmyk {
        let mut started = decompress
            .to_colorspace(ColorSpace::JCS_CMYK)
            .map_err(|e| e.to_string())?;
        let raw: Vec<[u8; 4]> = started.read_scanlines().map_err(|e| e.to_string())?;
        started.finish().map_err(|e| e.to_string())?;
        Ok((
            width,
            height,
            raw.iter().flat_map(|&p| cmyk_to_rgb(p)).collect(),
        ))
    } else {
        let mut started = decompress.rgb().map_err(|e| e.to_string())?;
        let rgb: Vec<u8> = started.read_scanlines::<u8>().map_err(|e| e.to_string())?;
        started.finish().map_err(|e| e.to_string())?;
        Ok((width, height, rgb))
    }
}

/// Pillow reads 4-component JPEGs as inverted CMYK (`"CMYK;I"`, Adobe's convention) and
/// converts to RGB with `cmyk2rgb` (`Convert.c`): `v = nk − nk·c/255`, `nk = 255 − k`, with
/// its fixed-point `MULDIV255`.
fn cmyk_to_rgb(inverted: [u8; 4]) -> [u8; 3] {
    let [c, m, y, k] = inverted.map(|v| 255 - v as i32);
    let nk = 255 - k;
    let muldiv255 = |a: i32, b: i32| {
        let tmp = a * b + 128;
        ((tmp >> 8) + tmp) >> 8
    };
    [c, m, y].map(|v| (nk - muldiv255(v, nk)).clamp(0, 255) as u8)
}

/// Raised from libjpeg's warning hook when the data ends inside the image.
#[derive(Debug)]
struct Truncated(J_MESSAGE_CODE);

impl std::fmt::Display for Truncated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "truncated JPEG data (libjpeg warning {})", self.0)
    }
}

/// libjpeg's standard error manager with warnings silenced, except the two that mean the file
/// ends early: libjpeg (and mozjpeg's reader) would fill the rest with grey, Pillow raises
/// "image file is truncated".
fn error_manager() -> jpeg_error_mgr {
    // SAFETY: `jpeg_std_error` only fills the fields of the struct it is given.
    let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.emit_message = Some(fail_on_truncation);
    err.error_exit = Some(unwind_on_error);
    err
}

extern "C-unwind" fn fail_on_truncation(cinfo: &mut jpeg_common_struct, level: c_int) {
    if level < 0 {
        // SAFETY: libjpeg calls this with its own, valid `err` pointer.
        let code = unsafe { (*cinfo.err).msg_code };
        if code == JWRN_HIT_MARKER as c_int || code == JWRN_JPEG_EOF as c_int {
            std::panic::resume_unwind(Box::new(Truncated(code as J_MESSAGE_CODE)));
        }
    }
}

extern "C-unwind" fn unwind_on_error(cinfo: &mut jpeg_common_struct) {
    // SAFETY: libjpeg's error manager and its message table (static C strings) are valid here.
    let message = unsafe { message_template(&*cinfo.err) };
    std::panic::resume_unwind(Box::new(message));
}

/// libjpeg's message for the current code, its printf parameters left unfilled.
unsafe fn message_template(err: &jpeg_error_mgr) -> String {
    let code = err.msg_code;
    if code > 0 && code <= err.last_jpeg_message && !err.jpeg_message_table.is_null() {
        // SAFETY: the table has `last_jpeg_message + 1` entries of NUL-terminated strings.
        let text = unsafe { std::ffi::CStr::from_ptr(*err.jpeg_message_table.add(code as usize)) };
        format!("libjpeg: {}", text.to_string_lossy())
    } else {
        format!("libjpeg error {code}")
    }
}
