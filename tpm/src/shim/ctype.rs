//! The glibc `<ctype.h>` tables behind `isalpha()`, `isspace()`, `tolower()`
//! and friends, for the "C" locale: `__ctype_b_loc` and
//! `__ctype_tolower_loc` return pointers to pointers into 384-entry tables
//! indexed from -128 (signed `char`) to 255.

use core::ffi::c_int;

/// glibc's class bits (little-endian layout of `_ISbit`).
pub mod class {
    pub const UPPER: u16 = 1 << 8;
    pub const LOWER: u16 = 1 << 9;
    pub const ALPHA: u16 = 1 << 10;
    pub const DIGIT: u16 = 1 << 11;
    pub const XDIGIT: u16 = 1 << 12;
    pub const SPACE: u16 = 1 << 13;
    pub const PRINT: u16 = 1 << 14;
    pub const GRAPH: u16 = 1 << 15;
    pub const BLANK: u16 = 1 << 0;
    pub const CNTRL: u16 = 1 << 1;
    pub const PUNCT: u16 = 1 << 2;
    pub const ALNUM: u16 = 1 << 3;
}

/// The "C" locale classes of byte `c` (nothing above 0x7F).
const fn classes(c: u8) -> u16 {
    use class::*;
    let mut m = 0;
    let upper = c.is_ascii_uppercase();
    let lower = c.is_ascii_lowercase();
    let digit = c.is_ascii_digit();
    if upper {
        m |= UPPER | ALPHA | ALNUM;
    }
    if lower {
        m |= LOWER | ALPHA | ALNUM;
    }
    if digit {
        m |= DIGIT | ALNUM;
    }
    if c.is_ascii_hexdigit() {
        m |= XDIGIT;
    }
    if matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        m |= SPACE;
    }
    if matches!(c, b' ' | b'\t') {
        m |= BLANK;
    }
    if c < 0x20 || c == 0x7F {
        m |= CNTRL;
    }
    if c >= 0x20 && c < 0x7F {
        m |= PRINT;
    }
    if c > 0x20 && c < 0x7F {
        m |= GRAPH;
        if !upper && !lower && !digit {
            m |= PUNCT;
        }
    }
    m
}

const fn class_table() -> [u16; 384] {
    let mut t = [0u16; 384];
    let mut i = 128;
    while i < 384 {
        t[i] = classes((i - 128) as u8);
        i += 1;
    }
    t
}

const fn tolower_table() -> [i32; 384] {
    let mut t = [0i32; 384];
    let mut i = 0;
    while i < 384 {
        let c = i as i32 - 128;
        // Negative indices are signed `char`s: they map to the unsigned
        // byte, except -1, which is EOF.
        t[i] = if c >= b'A' as i32 && c <= b'Z' as i32 {
            c + 32
        } else if c < -1 {
            c + 256
        } else {
            c
        };
        i += 1;
    }
    t
}

static CLASS: [u16; 384] = class_table();
static TOLOWER: [i32; 384] = tolower_table();

/// A pointer into one of the tables, shareable as a static.
#[repr(transparent)]
#[derive(Debug)]
pub struct TablePtr<T>(*const T);

// SAFETY: the pointers target immutable statics.
unsafe impl<T> Sync for TablePtr<T> {}

static CLASS_PTR: TablePtr<u16> = TablePtr(CLASS.as_ptr().wrapping_add(128));
static TOLOWER_PTR: TablePtr<i32> = TablePtr(TOLOWER.as_ptr().wrapping_add(128));

/// `const unsigned short **__ctype_b_loc(void)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn __ctype_b_loc() -> *const *const u16 {
    &CLASS_PTR.0
}

/// `const int32_t **__ctype_tolower_loc(void)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn __ctype_tolower_loc() -> *const *const c_int {
    &TOLOWER_PTR.0
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        // glibc's own (the shim's are Rust-mangled on the host).
        #[link_name = "__ctype_b_loc"]
        fn glibc_ctype_b_loc() -> *const *const u16;
        #[link_name = "__ctype_tolower_loc"]
        fn glibc_ctype_tolower_loc() -> *const *const c_int;
    }

    #[test]
    fn tables_match_glibc_c_locale() {
        // The test process never calls setlocale, so glibc is in the C locale.
        // SAFETY: both return pointers to pointers to the element at index 0
        // of 384-entry tables starting at index -128.
        unsafe {
            let (ours, theirs) = (*__ctype_b_loc(), *glibc_ctype_b_loc());
            for c in -128..256 {
                assert_eq!(*ours.offset(c), *theirs.offset(c), "class of {c}");
            }
            let (ours, theirs) = (*__ctype_tolower_loc(), *glibc_ctype_tolower_loc());
            for c in -128..256 {
                assert_eq!(*ours.offset(c), *theirs.offset(c), "tolower of {c}");
            }
        }
    }
}
